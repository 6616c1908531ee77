"""3D Student-Teacher (3D-ST) anomaly detection on point clouds.

Bergmann & Sattlegger, "Anomaly Detection in 3D Point Clouds using Deep Geometric
Descriptors", WACV 2023; seed 004. A teacher network, pretrained on synthetic scenes to
produce local geometric descriptors, is regressed by students trained on good parts only; the
per-point regression error is the anomaly score.

Modules, one job each:

* :mod:`~flawscope.pointcloud.cloud`: the :class:`PointCloud` sample.
* :mod:`~flawscope.pointcloud.io`: PLY / PCD / XYZ / CSV / NPY readers and writers.
* :mod:`~flawscope.pointcloud.organized`: MVTec 3D-AD xyz tiffs, background-plane removal.
* :mod:`~flawscope.pointcloud.scenes`: parametric shapes, ModelNet10 ``.off``, pretraining scenes.
* :mod:`~flawscope.pointcloud.scans`: organised synthetic scans (height maps from above).
* :mod:`~flawscope.pointcloud.defects`: synthetic defects with per-point labels.
* :mod:`~flawscope.pointcloud.synthetic`: labelled synthetic data sets on disk.
* :mod:`~flawscope.pointcloud.dataset`: finding training / test / input files.
* :mod:`~flawscope.pointcloud.knn`: k-NN graphs, receptive fields, chamfer distance (CPU).
* :mod:`~flawscope.pointcloud.networks`: LFA, residual blocks, teacher / student, decoder.
* :mod:`~flawscope.pointcloud.training`: Lightning modules and loop.
* :mod:`~flawscope.pointcloud.config`: :class:`PointCloudConfig` (pydantic, YAML).
* :mod:`~flawscope.pointcloud.detector`: :class:`PointCloudDetector` fit / predict / save / load.
* :mod:`~flawscope.pointcloud.evaluation`: object / point AUROC, AUPRO.
* :mod:`~flawscope.pointcloud.heatmap`: coloured PLY, PNG renders, ``(H, W)`` maps.
* :mod:`~flawscope.pointcloud.report`: the HTML report.

Command entry points live in :mod:`flawscope.commands.pointcloud`.
"""

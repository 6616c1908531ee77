"""Write labelled synthetic point-cloud sets of one built-in part, for fitting and evaluation.

Two layouts (read back by :mod:`flawscope.pointcloud.dataset`):

* unorganised (``organized=False``): clouds sampled from the whole part surface in random
  poses (:func:`flawscope.pointcloud.scenes.part_cloud`), written as binary PLY:
  ``train/good/*.ply``, ``test/good/*.ply``, ``test/<defect>/*.ply`` and per-point labels
  ``ground_truth/<defect>/<stem>.npy`` (uint8, file point order);
* organised (``organized=True``): scans from above (:func:`flawscope.pointcloud.scans.
  height_scan`) in the MVTec 3D-AD layout: ``train/good/xyz/*.tiff``,
  ``test/<defect>/xyz/*.tiff`` and masks ``test/<defect>/gt/<stem>.png`` (255 = defect).

Defects (:mod:`flawscope.pointcloud.defects`) are injected into held-out test clouds only; the
training clouds and ``test/good`` are defect-free instances drawn independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from flawscope.errors import ConfigError
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.defects import DEFECT_KINDS, inject_defect
from flawscope.pointcloud.io import organised_cloud, write_ply
from flawscope.pointcloud.organized import remove_background_plane, write_xyz_tiff
from flawscope.pointcloud.scans import height_scan
from flawscope.pointcloud.scenes import part_cloud


def good_cloud(
    shape: str, organized: bool, n_points: int, size: int, noise: float, rng: np.random.Generator
) -> PointCloud:
    """One defect-free cloud: a posed part (``n_points``) or a ``size`` x ``size`` scan."""
    if organized:
        return organised_cloud(height_scan(shape, size, rng, noise=noise))
    return part_cloud(shape, n_points, rng, noise=noise)


def defective_cloud(
    good: PointCloud, kind: str, rng: np.random.Generator
) -> tuple[PointCloud, np.ndarray | None]:
    """Inject one ``kind`` defect; organised scans get it on the part, not the table.

    Returns:
        ``(cloud with labels, (H, W) bool mask or None)``. For scans the cloud is the full
        scan (table included; points of a ``missing`` region become invalid pixels).
    """
    if not good.organized:
        return inject_defect(good, kind, rng)[0], None
    part = remove_background_plane(good)
    broken, _ = inject_defect(part, kind, rng, orient="+z")
    grid = np.zeros((*good.grid_shape, 3), dtype=np.float32)
    grid[good.pixels[:, 0], good.pixels[:, 1]] = good.points
    grid[part.pixels[:, 0], part.pixels[:, 1]] = 0.0  # dropped points stay invalid
    grid[broken.pixels[:, 0], broken.pixels[:, 1]] = broken.points
    mask = broken.to_map(broken.labels.astype(np.float32)) > 0
    cloud = organised_cloud(grid)
    cloud.labels = mask[cloud.pixels[:, 0], cloud.pixels[:, 1]]
    cloud.defect_type = kind
    return cloud, mask


def write_cloud(cloud: PointCloud, folder: Path, stem: str) -> Path:
    """Write a cloud: ``folder/xyz/<stem>.tiff`` when organised, else ``folder/<stem>.ply``."""
    if cloud.organized:
        grid = np.zeros((*cloud.grid_shape, 3), dtype=np.float32)
        grid[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points
        return write_xyz_tiff(folder / "xyz" / f"{stem}.tiff", grid)
    return write_ply(folder / f"{stem}.ply", cloud.points)


def write_synthetic_set(
    out: Path | str,
    shape: str = "brick",
    organized: bool = False,
    n_train: int = 40,
    n_good: int = 10,
    n_per_defect: int = 4,
    kinds: Sequence[str] = DEFECT_KINDS,
    n_points: int = 16000,
    size: int = 128,
    noise: float = 0.0,
    seed: int = 0,
) -> dict[str, int]:
    """Write a labelled set (see module docstring) and return the number of clouds per folder.

    Args:
        out: root folder (created).
        shape: built-in part (:data:`flawscope.pointcloud.scenes.SHAPES`).
        organized: scans in the MVTec 3D-AD layout instead of whole-part PLY clouds.
        n_train, n_good, n_per_defect: clouds in ``train/good``, ``test/good`` and each
            ``test/<defect>``.
        kinds: defect kinds (:data:`flawscope.pointcloud.defects.DEFECT_KINDS`).
        n_points: points per unorganised cloud; ``size``: scan side in pixels.
        noise: Gaussian sensor noise, units of the shape (the brick is in mm).
        seed: random seed (same arguments, same files).

    Raises:
        ConfigError: unknown shape or kind, or a count < 0 (``n_train`` < 2).
    """
    if n_train < 2 or min(n_good, n_per_defect) < 0:
        raise ConfigError(
            f"need n_train >= 2 and counts >= 0, got {n_train}, {n_good}, {n_per_defect}",
            "use e.g. --train 40 --good 10 --per-defect 4",
        )
    unknown = [k for k in kinds if k not in DEFECT_KINDS]
    if unknown:
        raise ConfigError(f"unknown defect kinds {unknown}", f"choose from {DEFECT_KINDS}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}

    def good(i: int) -> PointCloud:
        return good_cloud(shape, organized, n_points, size, noise, rng)

    for i in range(n_train):
        write_cloud(good(i), root / "train" / "good", f"{i:03d}")
    counts["train/good"] = n_train
    for i in range(n_good):
        write_cloud(good(i), root / "test" / "good", f"{i:03d}")
    counts["test/good"] = n_good
    for kind in kinds:
        for i in range(n_per_defect):
            cloud, mask = defective_cloud(good(i), kind, rng)
            stem = f"{i:03d}"
            write_cloud(cloud, root / "test" / kind, stem)
            if mask is not None:
                gt = root / "test" / kind / "gt" / f"{stem}.png"
                gt.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(gt), mask.astype(np.uint8) * 255)
            else:
                labels = root / "ground_truth" / kind / f"{stem}.npy"
                labels.parent.mkdir(parents=True, exist_ok=True)
                np.save(labels, cloud.labels.astype(np.uint8))
        counts[f"test/{kind}"] = n_per_defect
    return counts

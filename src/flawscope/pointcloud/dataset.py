"""Find point-cloud files: training folders, labelled test sets, inspection inputs.

Layouts understood:

* A folder of cloud files (any suffix of :data:`flawscope.pointcloud.io.SUFFIXES`).
* MVTec 3D-AD (Bergmann et al., "The MVTec 3D-AD Dataset for Unsupervised 3D Anomaly
  Detection and Localization", VISAPP 2022): ``<category>/train/good/xyz/*.tiff``,
  ``<category>/test/<defect>/xyz/*.tiff`` with ground-truth masks
  ``<category>/test/<defect>/gt/<stem>.png`` (nonzero = defect).
* Unorganised labelled sets (what :mod:`flawscope.pointcloud.synthetic` writes):
  ``<set>/train/good/*.ply``, ``<set>/test/<defect>/*.ply`` and per-point labels
  ``<set>/ground_truth/<defect>/<stem>.npy`` (``(N,)`` uint8, one per finite point in file order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flawscope.errors import DataError
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.io import is_cloud_file, read_cloud


@dataclass
class LabelledPath:
    """A test cloud: its file, its folder's defect type (``"good"`` or a defect name), and the
    file holding its ground truth (a gt PNG or a labels ``.npy``; None when there is none)."""

    path: Path
    defect_type: str
    truth: Path | None


def cloud_files(folder: Path) -> list[Path]:
    """Cloud files of ``folder``: its ``xyz/`` subfolder when it has one, else its own files.

    Sorted; not recursive (MVTec 3D-AD keeps ``rgb/`` images beside ``xyz/``).
    """
    xyz = folder / "xyz"
    base = xyz if xyz.is_dir() else folder
    return sorted(p for p in base.iterdir() if p.is_file() and is_cloud_file(p))


def training_files(path: Path | str) -> list[Path]:
    """Good training clouds: a folder of clouds, or a category's ``train/good`` (MVTec 3D-AD).

    Raises:
        DataError: the folder does not exist or holds no cloud file.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"training folder {path} does not exist",
            "pass a folder of good point clouds or an MVTec 3D-AD category folder",
        )
    good = path / "train" / "good"
    files = cloud_files(good if good.is_dir() else path)
    if not files:
        raise DataError(
            f"{path} holds no point-cloud files",
            "add .ply/.pcd/.xyz/.csv/.npy/.tiff files of good parts (or train/good/xyz/*.tiff)",
        )
    return files


def labelled_files(dataset: Path | str) -> list[LabelledPath]:
    """Test clouds of a labelled set, ``test/<defect type>/`` (see module docstring).

    Raises:
        DataError: no ``test`` folder, or no cloud file in it.
    """
    root = Path(dataset)
    test = root / "test"
    if not test.is_dir():
        raise DataError(
            f"{root} has no test/ folder",
            "pass a set laid out as test/good/ and test/<defect>/ (MVTec 3D-AD style)",
        )
    items = []
    for folder in sorted(p for p in test.iterdir() if p.is_dir()):
        kind = folder.name
        for f in cloud_files(folder):
            truth = None
            if kind != "good":
                for candidate in (
                    folder / "gt" / f"{f.stem}.png",
                    root / "ground_truth" / kind / f"{f.stem}.npy",
                ):
                    if candidate.is_file():
                        truth = candidate
                        break
            items.append(LabelledPath(f, kind, truth))
    if not items:
        raise DataError(f"{test} holds no point clouds", "put clouds under test/<defect type>/")
    return items


def read_labelled(item: LabelledPath) -> PointCloud:
    """Read a test cloud with its per-point labels (all False for ``good``; None if unknown).

    Raises:
        DataError: the cloud or its ground truth is unreadable or does not match the cloud.
    """
    cloud = read_cloud(item.path)
    cloud.defect_type = item.defect_type
    if item.defect_type == "good":
        cloud.labels = np.zeros(len(cloud), dtype=bool)
    elif item.truth is not None and item.truth.suffix == ".png":
        mask = cv2.imread(str(item.truth), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"ground truth {item.truth} is unreadable", "re-export the mask PNG")
        if not cloud.organized or mask.shape != cloud.grid_shape:
            raise DataError(
                f"mask {item.truth} is {mask.shape}, its scan {cloud.grid_shape}",
                "give every xyz tiff a gt PNG of the same height and width",
            )
        cloud.meta["mask"] = mask > 0
        cloud.labels = mask[cloud.pixels[:, 0], cloud.pixels[:, 1]] > 0
    elif item.truth is not None:
        labels = np.load(item.truth, allow_pickle=False).reshape(-1)
        if labels.size != len(cloud):
            raise DataError(
                f"{item.truth} has {labels.size} labels for {len(cloud)} points",
                "write one label per (finite) point of the cloud file, in file order",
            )
        cloud.labels = labels != 0
    return cloud


def input_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Cloud files among ``paths`` (files as given, folders searched recursively).

    Returns:
        ``(cloud files, missing paths)``; a missing path is one that does not exist.
    """
    found, missing = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and is_cloud_file(f))
        elif p.exists():
            found.append(p)
        else:
            missing.append(p)
    return found, missing


def unique_names(paths: list[Path]) -> list[str]:
    """Output names for ``paths``: the stem, prefixed by parent folders where stems collide.

    ``xyz`` folders are skipped, so MVTec 3D-AD's ``test/crack/xyz/000.tiff`` becomes
    ``crack_000`` when ``test/good/xyz/000.tiff`` is also given.
    """
    parts = [[q for q in reversed(p.with_suffix("").parts) if q != "xyz"] for p in paths]
    depth = [1] * len(paths)
    while True:
        names = ["_".join(reversed(pp[:d])) for pp, d in zip(parts, depth, strict=True)]
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        clashes = [i for ids in seen.values() if len(ids) > 1 for i in ids]
        grow = [i for i in clashes if depth[i] < len(parts[i])]
        if not grow:
            for ids in seen.values():  # identical full paths: number them
                for j, i in enumerate(ids[1:], 1):
                    names[i] = f"{names[i]}_{j}"
            return names
        for i in grow:
            depth[i] += 1

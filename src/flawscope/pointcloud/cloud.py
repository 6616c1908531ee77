"""The point-cloud sample: coordinates, optional pixel grid (organised scans), optional labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flawscope.errors import DataError


@dataclass
class PointCloud:
    """One point cloud.

    Attributes:
        points: ``(N, 3)`` float32 x, y, z in scene units (mm for MVTec 3D-AD-like scans, or
            whatever the file used; the detector normalises scale itself).
        path: file it came from, if any.
        pixels: ``(N, 2)`` int32 (row, col) of each point in an organised scan (MVTec 3D-AD
            ``xyz`` tiff, organised PCD); None for unorganised clouds.
        grid_shape: ``(H, W)`` of the organised scan; None for unorganised clouds.
        labels: ``(N,)`` bool ground truth, True = defect point; None when unknown.
        defect_type: ``"good"``, a defect name, or ``""`` when unknown.
        meta: extras, e.g. ``name`` (in-memory clouds), ``plane`` (the removed background
            plane), ``mask`` (the ``(H, W)`` ground-truth mask of an MVTec 3D-AD scan).
    """

    points: np.ndarray
    path: Path | None = None
    pixels: np.ndarray | None = None
    grid_shape: tuple[int, int] | None = None
    labels: np.ndarray | None = None
    defect_type: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        pts = np.asarray(self.points)
        where = f"{self.path}: " if self.path else ""
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise DataError(
                f"{where}points must be (N, 3), got shape {pts.shape}", "pass x, y, z per point"
            )
        self.points = np.ascontiguousarray(pts, dtype=np.float32)
        n = len(self.points)
        if self.pixels is not None:
            self.pixels = np.asarray(self.pixels, dtype=np.int32).reshape(n, 2)
            if self.grid_shape is None:
                raise DataError(f"{where}pixels given without grid_shape", "pass grid_shape=(H, W)")
            self.grid_shape = (int(self.grid_shape[0]), int(self.grid_shape[1]))
        if self.labels is not None:
            labels = np.asarray(self.labels).reshape(-1)
            if labels.size != n:
                raise DataError(
                    f"{where}{labels.size} labels for {n} points",
                    "give one defect label (0/1) per point, in point order",
                )
            self.labels = labels.astype(bool)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def organized(self) -> bool:
        """True when every point has a pixel of an ``(H, W)`` grid."""
        return self.pixels is not None and self.grid_shape is not None

    @property
    def name(self) -> str:
        """File stem, or ``"cloud"`` for an in-memory cloud."""
        return self.path.stem if self.path else str(self.meta.get("name", "cloud"))

    def subset(self, keep: np.ndarray) -> PointCloud:
        """A new cloud of the points selected by ``keep`` (bool mask or indices)."""
        return PointCloud(
            self.points[keep],
            self.path,
            None if self.pixels is None else self.pixels[keep],
            self.grid_shape,
            None if self.labels is None else self.labels[keep],
            self.defect_type,
            dict(self.meta),
        )

    def to_map(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter per-point ``values`` ``(N,)`` into an ``(H, W)`` float32 map.

        Pixels without a point (background, invalid) get ``fill``.

        Raises:
            DataError: the cloud is not organised, or ``values`` is not ``(N,)``.
        """
        if not self.organized:
            raise DataError(
                f"{self.name} is not an organised scan", "only (H, W) point maps have image maps"
            )
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.size != len(self):
            raise DataError(f"{values.size} values for {len(self)} points", "pass one per point")
        out = np.full(self.grid_shape, fill, dtype=np.float32)
        out[self.pixels[:, 0], self.pixels[:, 1]] = values
        return out

"""Any detector on overlap tiles of high-resolution images (seed 003 Sec. 3.8.1).

:class:`TiledDetector` wraps a detector trained on ``S x S`` inputs (``S = tile + 2 * context``)
so that it takes whole images of ``(H', W')`` pixels (each a multiple of ``tile``): fit trains the
inner detector on every tile of the training images (with mirrored context at the image border),
predict scores an image tile by tile and stitches the tile centres into one ``(H', W')`` anomaly
map (:func:`flawscope.preprocess.tiling.predict_tiled`). The image score is computed on the
stitched map (``scoring.aggregation``). Peak memory of predict does not grow with the image size
beyond the image and its map: one batch of tiles exists at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from flawscope.config import ScoringConfig
from flawscope.models.base import Prediction
from flawscope.preprocess.tiling import TileGrid, extract_tiles, predict_tiled
from flawscope.scoring import aggregate


class TiledDetector:
    """Overlap-tile wrapper around ``inner`` (any registered detector).

    Args:
        inner: a detector built for ``(n, C, S, S)`` inputs, ``S = tile + 2 * context``.
        tile: tile side T in pixels; context: mirrored context in pixels on every side.
        batch: tiles per call of ``inner.predict``.
        scoring: how the stitched map becomes the image score.
    """

    def __init__(
        self, inner: Any, tile: int, context: int, batch: int, scoring: ScoringConfig
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.tile, self.context, self.batch = tile, context, batch
        self.scoring = scoring
        self._tiles: int | None = None  # training tiles, set by fit

    @property
    def history(self) -> dict[str, list[float]]:
        """The inner detector's training history (empty for detectors that do not train)."""
        return getattr(self.inner, "history", {})

    @property
    def fit_stats(self) -> dict[str, Any] | None:
        """The inner detector's fit statistics, with the number of training tiles."""
        stats = getattr(self.inner, "fit_stats", None)
        return {**(stats or {}), "tiles": self._tiles}

    def tiles(self, images: torch.Tensor) -> torch.Tensor:
        """Every tile of ``(N, C, H', W')`` images as ``(N * T, C, S, S)`` float32 tensors."""
        if len(images) == 0:
            return images
        h, w = images.shape[-2:]
        grid = TileGrid.for_image(h, w, self.tile, self.context)
        out = torch.empty((len(images) * len(grid), images.shape[1], grid.input_size,
                           grid.input_size), dtype=torch.float32)  # fmt: skip
        for i, img in enumerate(images):
            hwc = img.permute(1, 2, 0).numpy()
            cut = extract_tiles(hwc, grid, 0, len(grid))  # (T, S, S, C)
            out[i * len(grid) : (i + 1) * len(grid)] = torch.from_numpy(cut).permute(0, 3, 1, 2)
        return out

    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None) -> TiledDetector:
        """Fit the inner detector on all tiles of ``train`` (``(N, C, H', W')`` in [0, 1])."""
        tiles = self.tiles(train)
        self._tiles = len(tiles)
        self.inner.fit(tiles, None if val is None else self.tiles(val))
        return self

    def _predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2)))
        return self.inner.predict(x).anomaly_maps

    def predict(self, batch: torch.Tensor) -> Prediction:
        """Stitched anomaly maps ``(N, H', W')`` and image scores ``(N,)``, float32."""
        maps = np.stack(
            [
                predict_tiled(
                    img.permute(1, 2, 0).numpy(),
                    self._predict_tiles,
                    self.tile,
                    self.context,
                    self.batch,
                    target=tuple(batch.shape[-2:]),
                )
                for img in batch
            ]
        ) if len(batch) else np.zeros((0, *batch.shape[-2:]), np.float32)  # fmt: skip
        s = self.scoring
        scores = aggregate(maps, s.aggregation, s.top_k_percent) if len(maps) else maps[:, 0, 0]
        return Prediction(scores.astype(np.float32), maps.astype(np.float32))

    def save(self, directory: Path) -> None:
        """Save the inner detector (tiling settings live in ``config.yaml``)."""
        self.inner.save(directory)

    def load(self, directory: Path) -> TiledDetector:
        """Load the inner detector's state."""
        self.inner.load(directory)
        return self

"""Overlap-tile inference: score a high-resolution image tile by tile and stitch the anomaly map.

A detector trained on small inputs cannot take a 4248 x 2832 px photograph whole (GPU memory),
and squashing it to the detector's input size loses small defects. The overlap-tile strategy
(Ronneberger et al., "U-Net", MICCAI 2015, Sec. 2 and Fig. 2) instead

1. resizes the image to ``(H', W')``, each side a multiple of the tile side ``T`` (the thesis,
   seed 003 Sec. 3.8.1: 4248 x 2832 -> 1536 x 1024 with ``T = 256``, 24 tiles per image);
2. cuts it into ``T x T`` tiles and gives each ``context`` (``c``) pixels of surrounding image on
   every side, so the detector sees ``(T + 2c) x (T + 2c)`` pixels (320 x 320 in the thesis,
   Fig. 3.27); where the surrounding lies outside the image it is mirrored (OpenCV
   ``BORDER_REFLECT_101``, ``np.pad(mode="reflect")``), which adds no artificial edge;
3. crops each ``(T + 2c)`` prediction back to its ``T x T`` centre and writes it at the tile's
   place in the ``(H', W')`` anomaly map (thesis Fig. 3.28).

A detector whose output at a pixel depends only on inputs at most ``c`` px away therefore gives
exactly the map it would give on the whole (mirror-padded) image: no seams at tile borders, and
border effects of the detector (zero padding of its convolutions) fall into the cropped context.

All sizes and offsets are in pixels; images are float32 ``(H, W)`` grey or ``(H, W, C)``
channels-last in ``[0, 1]``. Only one batch of tiles exists at a time (see :func:`predict_tiled`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from flawscope.errors import ConfigError, DataError
from flawscope.preprocess.enhance import resize

#: a detector for :func:`predict_tiled`: ``(n, S, S[, C])`` float32 tiles in ``[0, 1]`` ->
#: ``(n, S, S)`` float32 anomaly maps (any range; larger = more anomalous), ``S = T + 2c``
TilePredictor = Callable[[np.ndarray], np.ndarray]

#: smallest tile side in pixels; below it a tile holds too little of the part for a detector and
#: the per-tile overhead dominates
MIN_TILE = 8


def _check_tile(tile: int) -> None:
    if not isinstance(tile, (int, np.integer)) or tile < MIN_TILE:
        raise ConfigError(
            f"tile side {tile!r} px is invalid",
            f"use an integer tile side of at least {MIN_TILE} px (the thesis uses 256)",
        )


def _check_context(context: int, tile: int) -> None:
    # Reflect-101 padding of c px needs at least c + 1 image pixels on that side; the smallest
    # tiled image is one tile, so c <= T - 1 guarantees one mirror reflection is enough (a wider
    # pad would reflect again and fill the context with a repeated, not a mirrored, neighbourhood).
    if not isinstance(context, (int, np.integer)) or not 0 <= context < tile:
        raise ConfigError(
            f"context {context!r} px is invalid for tile side {tile} px",
            f"use an integer context from 0 to {tile - 1} px (less than the tile side, so the "
            "mirror padding reflects the image once; the thesis uses 32 for 256 px tiles)",
        )


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise DataError(
            f"image of shape {image.shape} cannot be tiled",
            "pass an (H, W) grey or (H, W, C) image of at least 1 x 1 px",
        )
    if image.ndim == 3 and image.shape[2] < 1:
        raise DataError(f"image of shape {image.shape} has no channels", "pass (H, W, C), C >= 1")
    return image.astype(np.float32, copy=False)


def tiled_size(
    height: int, width: int, tile: int = 256, target: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Size ``(H', W')`` in pixels that an ``height x width`` px image is resized to before tiling.

    Args:
        height: image height H in pixels, >= 1.
        width: image width W in pixels, >= 1.
        tile: tile side T in pixels, >= 8.
        target: ``(H', W')`` in pixels to use as is; each must be a positive multiple of
            ``tile`` (the thesis, seed 003 Sec. 3.8.1, picks 1536 x 1024 for 4248 x 2832 images,
            i.e. ``target=(1024, 1536)``, a roughly 2.8x reduction).

    Returns:
        ``target`` if given, else each side rounded to the nearest multiple of ``tile`` (halves
        round up) and at least one tile, e.g. ``(2832, 4248) -> (2816, 4352)`` for T = 256.

    Raises:
        DataError: ``height`` or ``width`` < 1.
        ConfigError: ``tile`` < 8, or ``target`` is not two positive multiples of ``tile``.
    """
    _check_tile(tile)
    if height < 1 or width < 1:
        raise DataError(
            f"image size {height} x {width} px is empty", "pass an image of >= 1 x 1 px"
        )
    if target is not None:
        if (
            len(target) != 2
            or any(not isinstance(s, (int, np.integer)) for s in target)
            or any(s < tile or s % tile for s in target)
        ):
            raise ConfigError(
                f"tiling target {tuple(target)!r} is not two positive multiples of the "
                f"{tile} px tile",
                f"give (height, width) in pixels as multiples of {tile}, e.g. "
                f"({4 * tile}, {6 * tile})",
            )
        return int(target[0]), int(target[1])
    return tuple(max(1, (s + tile // 2) // tile) * tile for s in (int(height), int(width)))


@dataclass(frozen=True)
class TileGrid:
    """A ``rows x cols`` grid of ``tile x tile`` px tiles covering an ``(H', W')`` image exactly.

    Attributes:
        rows: number of tile rows, ``H' / tile``, >= 1.
        cols: number of tile columns, ``W' / tile``, >= 1.
        tile: tile side T in pixels (the centre region each prediction is cropped to), >= 8.
        context: pixels of surrounding image added on every side of a tile, ``0 <= c < T``.

    Tiles are numbered row-major: tile ``i`` is at row ``i // cols``, column ``i % cols``.

    Raises:
        ConfigError: any attribute out of range.
    """

    rows: int
    cols: int
    tile: int = 256
    context: int = 32

    def __post_init__(self) -> None:
        _check_tile(self.tile)
        _check_context(self.context, self.tile)
        if self.rows < 1 or self.cols < 1:
            raise ConfigError(
                f"tile grid {self.rows} x {self.cols} is empty", "use at least one row and column"
            )

    @classmethod
    def for_image(cls, height: int, width: int, tile: int = 256, context: int = 32) -> TileGrid:
        """The grid of an already resized ``height x width`` px image (multiples of ``tile``).

        Raises:
            DataError: a side is not a positive multiple of ``tile`` (resize with
                :func:`tiled_size` first).
        """
        _check_tile(tile)
        if height < tile or width < tile or height % tile or width % tile:
            raise DataError(
                f"image of {height} x {width} px is not a whole number of {tile} px tiles",
                "resize it to tiled_size(height, width, tile) first",
            )
        return cls(height // tile, width // tile, tile, context)

    @property
    def input_size(self) -> int:
        """Side S of each detector input in pixels: ``tile + 2 * context`` (320 in the thesis)."""
        return self.tile + 2 * self.context

    @property
    def height(self) -> int:
        """Height H' of the tiled image in pixels."""
        return self.rows * self.tile

    @property
    def width(self) -> int:
        """Width W' of the tiled image in pixels."""
        return self.cols * self.tile

    def __len__(self) -> int:
        """Number of tiles, ``rows * cols``."""
        return self.rows * self.cols

    def boxes(self) -> Iterator[tuple[int, int, int, int]]:
        """``(row, col, top, left)`` of every tile, row-major.

        ``top``, ``left`` are the pixel offsets in the resized ``(H', W')`` image of the tile's
        ``tile x tile`` centre region (its context starts ``context`` px above and left of it,
        possibly outside the image).
        """
        for row in range(self.rows):
            for col in range(self.cols):
                yield row, col, row * self.tile, col * self.tile


def _reflect_index(start: int, size: int, n: int) -> np.ndarray:
    """Indices ``start .. start + size - 1`` into an axis of ``n`` px, reflect-101 outside it.

    ``-1 -> 1``, ``n -> n - 2`` (the border pixel is not repeated, as ``cv2.BORDER_REFLECT_101``
    and ``np.pad(mode="reflect")``); valid while indices lie within ``n - 1`` px of the axis.
    """
    idx = np.arange(start, start + size)
    idx = np.abs(idx)  # i < 0 -> -i
    return np.where(idx > n - 1, 2 * (n - 1) - idx, idx)


def _check_range(grid: TileGrid, start: int, stop: int) -> None:
    if not 0 <= start <= stop <= len(grid):
        raise ConfigError(
            f"tile range {start}..{stop} is outside the {len(grid)} tiles of the grid",
            f"use 0 <= start <= stop <= {len(grid)}",
        )


def extract_tiles(image: np.ndarray, grid: TileGrid, start: int, stop: int) -> np.ndarray:
    """Cut tiles ``start .. stop - 1`` (row-major) with their context out of a resized image.

    Each tile is its ``T x T`` region plus ``context`` px on every side, taken from the image
    where it exists and mirrored (reflect-101) beyond the image border (Ronneberger et al. 2015,
    Fig. 2; thesis seed 003 Fig. 3.27). The image is not padded as a whole: each tile gathers its
    pixels by index, so memory is only the returned ``stop - start`` tiles.

    Args:
        image: ``(H', W')`` or ``(H', W', C)`` float32 in ``[0, 1]``, with
            ``H' = grid.rows * grid.tile`` and ``W' = grid.cols * grid.tile`` pixels.
        grid: the tile grid of the image.
        start: first tile index, ``0 <= start <= stop``.
        stop: one past the last tile index, ``<= len(grid)``.

    Returns:
        ``(stop - start, S, S)`` or ``(stop - start, S, S, C)`` float32, ``S = grid.input_size``.

    Raises:
        DataError: the image is not 2-D/3-D or its size does not match ``grid``.
        ConfigError: the tile range is outside the grid.
    """
    image = _check_image(image)
    if image.shape[:2] != (grid.height, grid.width):
        raise DataError(
            f"image of {image.shape[0]} x {image.shape[1]} px does not match the "
            f"{grid.height} x {grid.width} px tile grid",
            "resize it to tiled_size(...) and build the grid with TileGrid.for_image",
        )
    _check_range(grid, start, stop)
    s, c = grid.input_size, grid.context
    out = np.empty((stop - start, s, s, *image.shape[2:]), dtype=np.float32)
    for k in range(start, stop):
        top, left = (k // grid.cols) * grid.tile, (k % grid.cols) * grid.tile
        rows = _reflect_index(top - c, s, grid.height)
        cols = _reflect_index(left - c, s, grid.width)
        out[k - start] = image[rows[:, None], cols[None, :]]
    return out


def stitch_centres(maps: np.ndarray, grid: TileGrid, out: np.ndarray, start: int = 0) -> None:
    """Write the ``T x T`` centre of each tile's map into the anomaly map, in place.

    The ``context`` px border of each map (the mirrored / neighbouring surroundings, where the
    detector's own border effects lie) is discarded (thesis seed 003 Fig. 3.28; Ronneberger et
    al. 2015 Sec. 2). Call once per batch to stream a large image.

    Args:
        maps: ``(n, S, S)`` float32 anomaly maps of tiles ``start .. start + n - 1``,
            ``S = grid.input_size`` pixels; any value range.
        grid: the tile grid.
        out: preallocated ``(H', W')`` float32 anomaly map (``grid.height x grid.width`` px),
            filled in place at the tiles' boxes.
        start: index (row-major) of the tile ``maps[0]`` belongs to.

    Raises:
        DataError: ``maps`` or ``out`` has the wrong shape.
        ConfigError: the tile range is outside the grid.
    """
    s, c, t = grid.input_size, grid.context, grid.tile
    if maps.ndim != 3 or maps.shape[1:] != (s, s):
        raise DataError(
            f"tile anomaly maps of shape {maps.shape} are not (n, {s}, {s})",
            f"the detector must return one {s} x {s} px map per input tile",
        )
    if out.shape != (grid.height, grid.width):
        raise DataError(
            f"output map of shape {out.shape} is not ({grid.height}, {grid.width})",
            "allocate it with the tiled image size",
        )
    _check_range(grid, start, start + len(maps))
    for i, m in enumerate(maps):
        k = start + i
        top, left = (k // grid.cols) * t, (k % grid.cols) * t
        out[top : top + t, left : left + t] = m[c : c + t, c : c + t]


def predict_tiled(
    image: np.ndarray,
    predict: TilePredictor,
    tile: int = 256,
    context: int = 32,
    batch: int = 8,
    target: tuple[int, int] | None = None,
) -> np.ndarray:
    """Anomaly map of a high-resolution image by overlap-tile inference.

    Resizes the image to :func:`tiled_size` (area interpolation when shrinking, bilinear when
    enlarging), runs ``predict`` on batches of at most ``batch`` tiles of ``S = tile + 2 *
    context`` px with mirrored context (:func:`extract_tiles`), and stitches the ``tile x tile``
    centres (:func:`stitch_centres`). Peak memory is the resized image, the output map and one
    batch of tiles and maps (``2 * batch * S * S [* C] * 4`` bytes), independent of the number of
    tiles. Source: thesis seed 003 Sec. 3.8.1, Figs. 3.27-3.28 (4248 x 2832 -> 1536 x 1024, 256 px
    tiles, 320 px inputs); Ronneberger et al., U-Net, MICCAI 2015, Sec. 2 / Fig. 2.

    Args:
        image: ``(H, W)`` grey or ``(H, W, C)`` float32 in ``[0, 1]``, at least 1 x 1 px.
        predict: the detector, ``(n, S, S[, C])`` float32 -> ``(n, S, S)`` float32 maps
            (``1 <= n <= batch``; a grey image gives 3-D tiles, a channel image 4-D ones).
        tile: tile side T in pixels, >= 8.
        context: mirrored / neighbouring context in pixels on every side, ``0 <= context < tile``.
        batch: most tiles passed to ``predict`` at once, >= 1.
        target: ``(H', W')`` to resize to, multiples of ``tile`` (thesis: ``(1024, 1536)``);
            default the nearest multiples of ``tile``.

    Returns:
        ``(H', W')`` float32 anomaly map of the resized image (resize it back to ``(H, W)``
        for the original resolution).

    Raises:
        ConfigError: ``tile``, ``context``, ``batch`` or ``target`` out of range.
        DataError: the image is empty or not 2-D/3-D, or ``predict`` returns the wrong shape.
    """
    _check_tile(tile)
    _check_context(context, tile)
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ConfigError(f"batch of {batch!r} tiles is invalid", "use a batch of at least 1 tile")
    image = _check_image(image)
    height, width = tiled_size(image.shape[0], image.shape[1], tile, target)
    resized = resize(image, height, width)
    grid = TileGrid.for_image(height, width, tile, context)
    out = np.empty((height, width), dtype=np.float32)
    for start in range(0, len(grid), batch):
        stop = min(start + batch, len(grid))
        tiles = extract_tiles(resized, grid, start, stop)
        maps = np.asarray(predict(tiles), dtype=np.float32)
        del tiles  # free the batch before the next one is cut
        if maps.shape != (stop - start, grid.input_size, grid.input_size):
            raise DataError(
                f"the detector returned shape {maps.shape} for {stop - start} tiles",
                f"return one ({grid.input_size}, {grid.input_size}) map per tile",
            )
        stitch_centres(maps, grid, out, start)
        del maps
    return out

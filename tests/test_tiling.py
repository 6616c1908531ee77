"""Overlap-tile inference: crop/stitch geometry, mirror context, no seams, batching, validation."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.errors import ConfigError, DataError
from flawscope.preprocess.enhance import resize
from flawscope.preprocess.tiling import (
    TileGrid,
    extract_tiles,
    predict_tiled,
    stitch_centres,
    tiled_size,
)

T, C = 16, 4  # tile side and context in pixels; inputs are 24 x 24
S = T + 2 * C


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _box3_zero_pad(t: np.ndarray) -> np.ndarray:
    """3 x 3 mean over the last two spatial axes of (n, S, S) with zero padding, like a conv."""
    p = np.pad(t, ((0, 0), (1, 1), (1, 1)))
    acc = np.zeros_like(t)
    for dy in range(3):
        for dx in range(3):
            acc += p[:, dy : dy + t.shape[1], dx : dx + t.shape[2]]
    return acc / 9.0


def test_identity_stitch_equals_resized_input() -> None:
    # 37 x 53 -> nearest multiples of 16: 32 x 48, so resizing is exercised too
    img = _rand(37, 53)
    out = predict_tiled(img, lambda t: t, tile=T, context=C, batch=4)
    assert out.shape == (32, 48) and out.dtype == np.float32
    np.testing.assert_array_equal(out, resize(img, 32, 48))


def test_identity_without_resize_returns_the_image() -> None:
    img = _rand(32, 48, seed=1)
    np.testing.assert_array_equal(predict_tiled(img, lambda t: t, tile=T, context=C), img)


def test_local_detector_has_no_seams_on_constant_image() -> None:
    # the zero-padded box filter is wrong within 1 px of each input border; the context crops it
    img = np.full((48, 64), 0.37, dtype=np.float32)
    out = predict_tiled(img, _box3_zero_pad, tile=T, context=C, batch=5)
    np.testing.assert_allclose(out, 0.37, rtol=0, atol=1e-6)
    # without context the same detector leaves seams at every tile border
    seamy = predict_tiled(img, _box3_zero_pad, tile=T, context=0)
    assert seamy.min() < 0.3


def test_local_detector_equals_whole_image_filter() -> None:
    # overlap-tile property: a detector with radius <= context gives the whole-image result
    img = _rand(48, 64, seed=2)
    out = predict_tiled(img, _box3_zero_pad, tile=T, context=C, batch=3)
    whole = _box3_zero_pad(np.pad(img, C, mode="reflect")[None])[0, C:-C, C:-C]
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-6)


def test_border_flags_are_cropped_away() -> None:
    def flag_border(t: np.ndarray) -> np.ndarray:
        m = np.ones(t.shape[:3], dtype=np.float32)
        m[:, C:-C, C:-C] = 0.0
        return m

    out = predict_tiled(_rand(48, 32, seed=3), flag_border, tile=T, context=C)
    assert out.shape == (48, 32)
    assert not out.any()


@pytest.mark.parametrize("channels", [None, 3])
def test_tiles_match_reflect_101_padding(channels: int | None) -> None:
    shape = (32, 48) if channels is None else (32, 48, channels)
    img = _rand(*shape, seed=4)
    grid = TileGrid.for_image(32, 48, T, C)
    widths = ((C, C), (C, C)) + (((0, 0),) if channels else ())
    padded = np.pad(img, widths, mode="reflect")
    tiles = extract_tiles(img, grid, 0, len(grid))
    assert tiles.shape == (6, S, S) + ((channels,) if channels else ())
    for k, (row, col, top, left) in enumerate(grid.boxes()):
        assert (top, left) == (row * T, col * T) and k == row * grid.cols + col
        np.testing.assert_array_equal(tiles[k], padded[top : top + S, left : left + S])
    # corner tile: reflect-101 does not repeat the border pixel
    np.testing.assert_array_equal(tiles[0][C - 1, C:], img[1, : S - C])
    np.testing.assert_array_equal(tiles[0][C:, C - 1], img[: S - C, 1])
    # a sub-range gives the same tiles
    np.testing.assert_array_equal(extract_tiles(img, grid, 2, 5), tiles[2:5])


def test_batching_same_result_and_bounded_batches() -> None:
    img = _rand(48, 64, seed=5)  # 12 tiles
    sizes: list[int] = []

    def rec(t: np.ndarray) -> np.ndarray:
        sizes.append(len(t))
        return _box3_zero_pad(t) + t.mean(axis=(1, 2), keepdims=True)

    one = predict_tiled(img, rec, tile=T, context=C, batch=1)
    assert sizes == [1] * 12
    sizes.clear()
    five = predict_tiled(img, rec, tile=T, context=C, batch=5)
    assert sizes == [5, 5, 2]
    sizes.clear()
    big = predict_tiled(img, rec, tile=T, context=C, batch=100)
    assert sizes == [12]
    np.testing.assert_array_equal(one, big)
    np.testing.assert_array_equal(one, five)


def test_rgb_input() -> None:
    img = _rand(40, 30, 3, seed=6)
    shapes: list[tuple[int, ...]] = []

    def first_channel(t: np.ndarray) -> np.ndarray:
        shapes.append(t.shape)
        return t[..., 0]

    out = predict_tiled(img, first_channel, tile=T, context=C, batch=2)
    assert out.shape == (48, 32) and out.dtype == np.float32
    assert all(s[1:] == (S, S, 3) for s in shapes)
    np.testing.assert_array_equal(out, resize(img, 48, 32)[..., 0])


def test_target_size_thesis_geometry() -> None:
    assert tiled_size(2832, 4248, 256, target=(1024, 1536)) == (1024, 1536)
    grid = TileGrid.for_image(1024, 1536, 256, 32)
    assert (grid.rows, grid.cols, len(grid), grid.input_size) == (4, 6, 24, 320)
    img = _rand(50, 70, seed=7)
    out = predict_tiled(img, lambda t: t, tile=T, context=C, target=(32, 64))
    np.testing.assert_array_equal(out, resize(img, 32, 64))


def test_tiled_size_rounding() -> None:
    assert tiled_size(2832, 4248) == (2816, 4352)
    assert tiled_size(5, 3, tile=T) == (T, T)  # at least one tile
    assert tiled_size(24, 23, tile=T) == (32, 16)  # half rounds up, below half rounds down
    assert tiled_size(48, 40, tile=T) == (48, 48)


@pytest.mark.parametrize("target", [(100, 64), (0, 32), (-16, 32), (32,), (32.0, 32)])
def test_tiled_size_rejects_bad_target(target: tuple) -> None:
    with pytest.raises(ConfigError, match="multiples"):
        tiled_size(40, 40, tile=T, target=target)


@pytest.mark.parametrize(
    ("tile", "context", "batch"), [(4, 0, 1), (16, 16, 1), (16, -1, 1), (16, 4, 0), (16.0, 4, 1)]
)
def test_bad_tile_context_batch(tile: int, context: int, batch: int) -> None:
    with pytest.raises(ConfigError):
        predict_tiled(_rand(32, 32), lambda t: t, tile=tile, context=context, batch=batch)


def test_context_may_reach_tile_minus_one_on_a_single_tile() -> None:
    img = _rand(16, 16, seed=8)
    out = predict_tiled(img, lambda t: t, tile=T, context=T - 1)
    np.testing.assert_array_equal(out, img)


def test_bad_images_and_detector_output() -> None:
    for bad in (np.zeros((0, 5), np.float32), np.zeros(7, np.float32), np.zeros((4, 4, 0))):
        with pytest.raises(DataError):
            predict_tiled(bad, lambda t: t, tile=T, context=C)
    with pytest.raises(DataError, match="detector returned"):
        predict_tiled(_rand(32, 32), lambda t: t[:, :-1], tile=T, context=C)
    with pytest.raises(DataError):
        TileGrid.for_image(30, 32, T, C)
    grid = TileGrid.for_image(32, 32, T, C)
    with pytest.raises(DataError):
        extract_tiles(_rand(32, 48), grid, 0, 1)
    with pytest.raises(ConfigError):
        extract_tiles(_rand(32, 32), grid, 2, 5)


def test_stitch_streams_batches_in_place() -> None:
    grid = TileGrid(2, 3, T, C)
    out = np.full((32, 48), -1.0, dtype=np.float32)
    maps = np.stack([np.full((S, S), k, np.float32) for k in range(6)])
    stitch_centres(maps[:4], grid, out, start=0)
    assert (out[16:, 16:] == -1).all()  # tiles 4, 5 not yet written
    stitch_centres(maps[4:], grid, out, start=4)
    expected = np.kron(np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((T, T)))
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ConfigError):
        stitch_centres(maps[:2], grid, out, start=5)
    with pytest.raises(DataError):
        stitch_centres(maps[:, :-1], grid, out)
    with pytest.raises(DataError):
        stitch_centres(maps, grid, np.zeros((32, 32), np.float32))

"""Reading images: formats, bit depths, colour, and bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from flawscope.data.io import read_image, read_mask
from flawscope.errors import ImageReadError


def _grad(h: int = 20, w: int = 30) -> np.ndarray:
    return np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg"])
def test_grey_8bit_formats(tmp_path: Path, suffix: str) -> None:
    g = (_grad() * 255).round().astype(np.uint8)
    p = tmp_path / f"a{suffix}"
    Image.fromarray(g).save(p)
    img = read_image(p)
    assert img.shape == (20, 30) and img.dtype == np.float32
    tol = 0.03 if suffix == ".jpg" else 1e-6
    np.testing.assert_allclose(img, g / 255.0, atol=tol)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_16bit_keeps_precision(tmp_path: Path, suffix: str) -> None:
    g = (_grad() * 65535).round().astype(np.uint16)
    p = tmp_path / f"a{suffix}"
    cv2.imwrite(str(p), g)
    img = read_image(p)
    assert img.shape == (20, 30)
    np.testing.assert_allclose(img, g / 65535.0, atol=1e-6)
    # 16-bit steps finer than 1/255 survive
    assert len(np.unique(img)) == len(np.unique(g))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_colour_16bit_keeps_precision(tmp_path: Path, suffix: str) -> None:
    bgr = (np.random.default_rng(0).random((10, 12, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / f"c{suffix}"), bgr)
    img = read_image(tmp_path / f"c{suffix}")
    assert img.shape == (10, 12, 3)
    np.testing.assert_allclose(img, bgr[..., ::-1] / 65535.0, atol=1e-6)


def test_rgb_and_rgba(tmp_path: Path) -> None:
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = read_image(tmp_path / "c.png")
    assert img.shape == (8, 9, 3)
    assert img[0, 0].tolist() == [1.0, 0.0, 0.0]
    rgba = np.dstack([rgb, np.full((8, 9), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "d.png")
    assert read_image(tmp_path / "d.png").shape == (8, 9, 3)


def test_truncated_png_raises_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "full.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(p)
    bad = tmp_path / "cut.png"
    bad.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(bad)


def test_truncated_jpeg_raises(tmp_path: Path) -> None:
    p = tmp_path / "full.jpg"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(p)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(bad)


def test_not_an_image_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="text.png"):
        read_image(tmp_path / "text.png")
    with pytest.raises(ImageReadError, match="empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_read_mask_is_bool(tmp_path: Path) -> None:
    m = np.zeros((5, 5), np.uint8)
    m[1:3, 2] = 255
    cv2.imwrite(str(tmp_path / "m.png"), m)
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == bool and mask.sum() == 2

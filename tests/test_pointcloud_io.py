"""Point-cloud readers: round trips through every format, and one-line errors for bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from flawscope.errors import DataError
from flawscope.pointcloud.io import read_cloud, write_pcd, write_ply, write_xyz
from flawscope.pointcloud.organized import read_xyz_tiff, write_xyz_tiff


@pytest.fixture()
def points() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(257, 3)).astype(np.float32) * 10


def assert_one_line(exc: pytest.ExceptionInfo) -> None:
    text = str(exc.value)
    assert "\n" not in text and " -- " in text  # problem -- fix


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path: Path, points: np.ndarray, binary: bool) -> None:
    colours = np.random.default_rng(1).integers(0, 256, (len(points), 3)).astype(np.uint8)
    path = write_ply(tmp_path / "a.ply", points, colours, {"s": points[:, 0]}, binary=binary)
    np.testing.assert_allclose(read_cloud(path).points, points, rtol=1e-6)


def test_ply_big_endian_with_faces_after_vertices(tmp_path: Path, points: np.ndarray) -> None:
    header = (
        "ply\nformat binary_big_endian 1.0\ncomment hand made\nelement vertex "
        f"{len(points)}\nproperty double x\nproperty double y\nproperty double z\n"
        "property uchar flag\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    table = np.zeros(len(points), dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("f", "u1")])
    for i, c in enumerate("xyz"):
        table[c] = points[:, i]
    face = struct.pack(">B3i", 3, 0, 1, 2)
    (tmp_path / "b.ply").write_bytes(header.encode() + table.tobytes() + face)
    np.testing.assert_allclose(read_cloud(tmp_path / "b.ply").points, points, rtol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_pcd_round_trip(tmp_path: Path, points: np.ndarray, binary: bool) -> None:
    path = write_pcd(tmp_path / "a.pcd", points, binary=binary)
    np.testing.assert_allclose(read_cloud(path).points, points, rtol=1e-6)


def _lzf_literals(data: bytes) -> bytes:
    """A valid LZF stream of literal runs only (what any decoder must accept)."""
    return b"".join(
        bytes([len(c) - 1]) + c for c in (data[i : i + 32] for i in range(0, len(data), 32))
    )


def test_pcd_binary_compressed_and_organised(tmp_path: Path) -> None:
    h, w = 4, 6
    grid = np.random.default_rng(2).uniform(1, 2, (h, w, 3)).astype("<f4")
    grid[1, 2] = np.nan  # no measurement
    raw = b"".join(np.ascontiguousarray(grid.reshape(-1, 3)[:, i]).tobytes() for i in range(3))
    packed = _lzf_literals(raw)
    header = (
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        f"WIDTH {w}\nHEIGHT {h}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {h * w}\nDATA binary_compressed\n"
    )
    body = struct.pack("<II", len(packed), len(raw)) + packed
    (tmp_path / "c.pcd").write_bytes(header.encode() + body)
    cloud = read_cloud(tmp_path / "c.pcd")
    assert cloud.organized and cloud.grid_shape == (h, w) and len(cloud) == h * w - 1
    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    np.testing.assert_array_equal(cloud.points, grid[r, c])


def test_lzf_back_reference() -> None:
    from flawscope.pointcloud.io import _lzf_decompress

    # literal "abc", then a back reference of length 6 to offset 3 -> "abcabcabc"
    stream = bytes([2]) + b"abc" + bytes([(4 << 5) | 0, 2])
    assert _lzf_decompress(stream, 9) == b"abcabcabc"


@pytest.mark.parametrize(
    ("name", "delimiter", "header"), [("a.xyz", " ", ""), ("a.csv", ",", "x,y,z\n")]
)
def test_text_round_trip(
    tmp_path: Path, points: np.ndarray, name: str, delimiter: str, header: str
) -> None:
    path = write_xyz(tmp_path / name, points, delimiter)
    path.write_text(header + path.read_text())
    np.testing.assert_allclose(read_cloud(path).points, points, rtol=1e-6)


def test_npy_unorganised_and_organised(tmp_path: Path, points: np.ndarray) -> None:
    np.save(tmp_path / "a.npy", points)
    np.testing.assert_array_equal(read_cloud(tmp_path / "a.npy").points, points)
    grid = np.ones((5, 7, 3), dtype=np.float32)
    grid[0, 0] = 0.0  # invalid pixel of MVTec 3D-AD
    np.save(tmp_path / "g.npy", grid)
    cloud = read_cloud(tmp_path / "g.npy")
    assert cloud.organized and len(cloud) == 34 and cloud.grid_shape == (5, 7)


def test_tiff_round_trip_keeps_pixels(tmp_path: Path) -> None:
    grid = np.random.default_rng(3).uniform(1, 2, (9, 11, 3)).astype(np.float32)
    grid[2:4, 5] = 0.0
    path = write_xyz_tiff(tmp_path / "xyz" / "000.tiff", grid)
    cloud = read_cloud(path)
    assert cloud.organized and len(cloud) == 9 * 11 - 2
    np.testing.assert_array_equal(cloud.points, grid[cloud.pixels[:, 0], cloud.pixels[:, 1]])
    np.testing.assert_array_equal(cloud.to_map(cloud.points[:, 2]), grid[..., 2])


# ------------------------------------------------------------------------------ bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as exc:
        read_cloud(tmp_path / "nope.ply")
    assert_one_line(exc)


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.obj").write_text("v 0 0 0\n")
    with pytest.raises(DataError, match="unsupported") as exc:
        read_cloud(tmp_path / "a.obj")
    assert_one_line(exc)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
                      b"property float y\nproperty float z\nend_header\n"),
        ("empty.xyz", b"# nothing here\n"),
        ("nan.xyz", b"nan nan nan\n"),
    ],
)  # fmt: skip
def test_empty_cloud(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as exc:
        read_cloud(tmp_path / name)
    assert_one_line(exc)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.ply", b"\x00\x01garbage"),
        ("truncated.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n"
                          b"property float x\nproperty float y\nproperty float z\nend_header\n"
                          + b"\x00" * 20),
        ("noxyz.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\n"
                      b"end_header\n1\n"),
        ("bad.pcd", b"VERSION 0.7\nFIELDS a b\n"),
        ("words.csv", b"x,y,z\na,b,c\n"),
        ("two.xyz", b"1 2\n3 4\n"),
        ("bad.tiff", b"II*\x00garbage"),
    ],
)  # fmt: skip
def test_corrupt_file(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as exc:
        read_cloud(tmp_path / name)
    assert_one_line(exc)
    assert name in str(exc.value)


def test_wrong_tiff_shape(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "depth.tiff", np.ones((8, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"must be \(H, W, 3\)") as exc:
        read_xyz_tiff(tmp_path / "depth.tiff")
    assert_one_line(exc)


def test_wrong_npy_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((10, 2)))
    with pytest.raises(DataError, match=r"\(N, 3\)") as exc:
        read_cloud(tmp_path / "a.npy")
    assert_one_line(exc)

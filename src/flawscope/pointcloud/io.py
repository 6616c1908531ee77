"""Read and write point clouds: PLY, PCD, XYZ / CSV text, NumPy ``.npy`` and xyz tiff maps.

Readers return a :class:`~flawscope.pointcloud.cloud.PointCloud` with ``(N, 3)`` float32
coordinates in the file's own units; points with a non-finite coordinate are dropped.
Organised inputs (MVTec 3D-AD ``xyz/*.tiff``, ``.npy`` of shape ``(H, W, 3)``, organised PCD
with ``HEIGHT > 1``) keep each point's pixel, and points at exactly ``(0, 0, 0)`` (no
measurement) are dropped as well.

Supported encodings: PLY ``ascii``, ``binary_little_endian`` and ``binary_big_endian`` (the
``vertex`` element, its ``x``/``y``/``z`` properties; faces are ignored); PCD ``ascii``,
``binary`` and ``binary_compressed`` (LZF; Point Cloud Library file format v0.7); text with
x, y, z in the first three columns separated by commas, semicolons or white space (a header
line is skipped); ``.npy`` ``(N, 3)`` or ``(H, W, 3)``; tiff ``(H, W, 3)`` float.

Every problem is a :class:`flawscope.errors.DataError` naming the file and a fix.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from flawscope.errors import DataError
from flawscope.pointcloud.cloud import PointCloud

TEXT_SUFFIXES = (".xyz", ".csv", ".txt", ".pts")
SUFFIXES = (".ply", ".pcd", *TEXT_SUFFIXES, ".npy", ".tif", ".tiff")
"""File suffixes :func:`read_cloud` accepts (lower case)."""

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8"} | {
    (kind, size): f"{kind.lower()}{size}" for kind in "IU" for size in (1, 2, 4, 8)
}
_FIX_EXPORT = "re-export the file (e.g. with Open3D, CloudCompare or MeshLab) and try again"


def is_cloud_file(path: Path) -> bool:
    """True when ``path`` has a point-cloud suffix (see :data:`SUFFIXES`)."""
    return Path(path).suffix.lower() in SUFFIXES


def read_cloud(path: Path | str) -> PointCloud:
    """Read one point cloud file (format from the suffix; see the module docstring).

    Returns:
        The cloud; organised inputs carry ``pixels`` and ``grid_shape``.

    Raises:
        DataError: missing file, unsupported suffix, corrupt or truncated content, no
            ``x``/``y``/``z``, or no valid point.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"point cloud {path} does not exist", "check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported point-cloud format {suffix or '(no suffix)'}",
            f"convert it to one of {', '.join(SUFFIXES)}",
        )
    if suffix in (".tif", ".tiff"):
        from flawscope.pointcloud.organized import read_xyz_tiff

        return read_xyz_tiff(path)
    try:
        if suffix == ".ply":
            cloud = PointCloud(_read_ply(path), path)
        elif suffix == ".pcd":
            cloud = _read_pcd(path)
        elif suffix == ".npy":
            cloud = _read_npy(path)
        else:
            cloud = PointCloud(_read_text(path), path)
    except DataError:
        raise
    except (ValueError, OSError, struct.error, UnicodeDecodeError, IndexError) as exc:
        raise DataError(
            f"{path} is not a readable {suffix} point cloud ({exc})", _FIX_EXPORT
        ) from exc
    return finite_points(cloud)


def finite_points(cloud: PointCloud) -> PointCloud:
    """Drop points with a non-finite coordinate; raise DataError when none is left."""
    ok = np.isfinite(cloud.points).all(axis=1)
    if not ok.all():
        cloud = cloud.subset(ok)
    if len(cloud) == 0:
        raise DataError(f"{cloud.path or 'the cloud'} holds no valid point", "check the file")
    return cloud


def organised_cloud(grid: np.ndarray, path: Path | None = None) -> PointCloud:
    """``(H, W, 3)`` point map -> cloud of its valid pixels (finite, not ``(0, 0, 0)``).

    Raises:
        DataError: ``grid`` is not ``(H, W, 3)``, or no pixel is valid.
    """
    grid = np.asarray(grid)
    where = f"{path}: " if path else ""
    if grid.ndim != 3 or grid.shape[2] != 3:
        raise DataError(
            f"{where}an organised point map must be (H, W, 3), got {grid.shape}",
            "pass the xyz map of an MVTec 3D-AD-style scan (x, y, z channels)",
        )
    valid = np.isfinite(grid).all(axis=2) & (grid != 0).any(axis=2)
    rows, cols = np.nonzero(valid)
    if rows.size == 0:
        raise DataError(f"{where}the point map has no valid point", "check the scan")
    return PointCloud(
        grid[rows, cols].astype(np.float32), path, np.stack([rows, cols], 1), grid.shape[:2]
    )


# ----------------------------------------------------------------------------------- PLY


def _read_ply(path: Path) -> np.ndarray:
    with path.open("rb") as fh:
        if fh.readline().strip() != b"ply":
            raise DataError(f"{path} does not start with 'ply'", _FIX_EXPORT)
        fmt, elements = None, []  # elements: [name, count, [(prop, dtype or None=list)]]
        while True:
            raw = fh.readline()
            if not raw:
                raise DataError(f"{path}: PLY header has no end_header", _FIX_EXPORT)
            words = raw.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append([words[1], int(words[2]), []])
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    elements[-1][2].append((words[-1], None))
                else:
                    elements[-1][2].append((words[-1], _PLY_TYPES[words[1]]))
        if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
            raise DataError(f"{path}: unknown PLY format {fmt!r}", _FIX_EXPORT)
        names = [e[0] for e in elements]
        if "vertex" not in names:
            raise DataError(f"{path}: PLY file has no vertex element", _FIX_EXPORT)
        vertex = elements[names.index("vertex")]
        props = [p for p, _ in vertex[2]]
        if not {"x", "y", "z"} <= set(props):
            raise DataError(f"{path}: PLY vertices lack x, y, z properties", _FIX_EXPORT)
        if any(t is None for _, t in vertex[2]):
            raise DataError(f"{path}: PLY vertices have list properties", _FIX_EXPORT)
        before = elements[: names.index("vertex")]
        if fmt == "ascii":
            skip = sum(e[1] for e in before)
            lines = fh.read().decode("ascii").splitlines()[skip : skip + vertex[1]]
            if len(lines) < vertex[1]:
                raise DataError(
                    f"{path}: truncated, {len(lines)} of {vertex[1]} vertices", _FIX_EXPORT
                )
            table = np.array([line.split()[: len(props)] for line in lines], dtype=np.float64)
            table = table.reshape(vertex[1], len(props))
            return np.stack([table[:, props.index(c)] for c in "xyz"], 1)
        order = "<" if fmt == "binary_little_endian" else ">"
        for e in before:
            if any(t is None for _, t in e[2]):
                raise DataError(
                    f"{path}: PLY element {e[0]} before the vertices has lists", _FIX_EXPORT
                )
            fh.seek(e[1] * sum(np.dtype(t).itemsize for _, t in e[2]), 1)
        dtype = np.dtype([(p, order + t) for p, t in vertex[2]])
        data = fh.read(dtype.itemsize * vertex[1])
        if len(data) < dtype.itemsize * vertex[1]:
            raise DataError(
                f"{path}: truncated, {len(data) // dtype.itemsize} of {vertex[1]} vertices",
                _FIX_EXPORT,
            )
        table = np.frombuffer(data, dtype=dtype)
        return np.stack([table[c].astype(np.float64) for c in "xyz"], 1)


def write_ply(
    path: Path | str,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    scalars: dict[str, np.ndarray] | None = None,
    binary: bool = True,
) -> Path:
    """Write vertices (no faces) as PLY.

    Args:
        path: output file; parent folders are created.
        points: ``(N, 3)`` float, written as float32.
        colors: ``(N, 3)`` uint8 RGB (``red``/``green``/``blue`` properties) or None.
        scalars: extra float32 per-vertex properties, e.g. ``{"anomaly_score": (N,)}``.
        binary: binary little endian (compact) or ascii.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    scalars = scalars or {}
    fields += [(name, "<f4") for name in scalars]
    table = np.zeros(len(pts), dtype=fields)
    for i, c in enumerate("xyz"):
        table[c] = pts[:, i]
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        for i, c in enumerate(("red", "green", "blue")):
            table[c] = rgb[:, i]
    for name, values in scalars.items():
        table[name] = np.asarray(values, dtype=np.float32).reshape(-1)
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = [
        "ply",
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        "comment written by flawscope",
        f"element vertex {len(pts)}",
        *[f"property {ply_type[t]} {name}" for name, t in fields],
        "end_header",
    ]
    with path.open("wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            fh.write(table.tobytes())
        else:
            fmt = " ".join("%d" if t == "u1" else "%.9g" for _, t in fields)
            np.savetxt(fh, table.tolist(), fmt=fmt)
    return path


# ----------------------------------------------------------------------------------- PCD


def _read_pcd(path: Path) -> PointCloud:
    header: dict[str, list[str]] = {}
    with path.open("rb") as fh:
        while True:
            raw = fh.readline()
            if not raw:
                raise DataError(f"{path}: PCD header has no DATA line", _FIX_EXPORT)
            words = raw.decode("ascii", "replace").split()
            if not words or words[0].startswith("#"):
                continue
            header[words[0].upper()] = words[1:]
            if words[0].upper() == "DATA":
                break
        body = fh.read()
    fields = header.get("FIELDS", [])
    if not {"x", "y", "z"} <= set(fields):
        raise DataError(f"{path}: PCD FIELDS lack x, y, z", _FIX_EXPORT)
    n_fields = len(fields)
    sizes = [int(s) for s in header.get("SIZE", ["4"] * n_fields)]
    types = header.get("TYPE", ["F"] * n_fields)
    counts = [int(c) for c in header.get("COUNT", ["1"] * n_fields)]
    width, height = int(header["WIDTH"][0]), int(header.get("HEIGHT", ["1"])[0])
    n = int(header.get("POINTS", [str(width * height)])[0])
    dtypes = [_PCD_TYPES[(t.upper(), s)] for t, s in zip(types, sizes, strict=True)]
    mode = header["DATA"][0].lower()
    if mode == "ascii":
        rows = [line.split() for line in body.decode("ascii").splitlines() if line.strip()]
        if len(rows) < n:
            raise DataError(f"{path}: truncated, {len(rows)} of {n} points", _FIX_EXPORT)
        table = np.array([r[: sum(counts)] for r in rows[:n]], dtype=np.float64)
        starts = np.cumsum([0, *counts])
        cols = {f: table[:, starts[i]] for i, f in enumerate(fields)}
    elif mode == "binary":
        dtype = np.dtype(
            [(f, "<" + t, (c,)) for f, t, c in zip(fields, dtypes, counts, strict=True)]
        )
        if len(body) < dtype.itemsize * n:
            raise DataError(f"{path}: truncated binary PCD data", _FIX_EXPORT)
        table = np.frombuffer(body[: dtype.itemsize * n], dtype=dtype)
        cols = {f: table[f][:, 0].astype(np.float64) for f in fields}
    elif mode == "binary_compressed":
        packed, size = struct.unpack("<II", body[:8])
        raw = _lzf_decompress(body[8 : 8 + packed], size)
        cols, offset = {}, 0
        for f, t, c in zip(fields, dtypes, counts, strict=True):  # field-major layout
            nbytes = np.dtype(t).itemsize * c * n
            arr = np.frombuffer(raw[offset : offset + nbytes], dtype="<" + t).reshape(n, c)
            cols[f], offset = arr[:, 0].astype(np.float64), offset + nbytes
    else:
        raise DataError(f"{path}: unknown PCD DATA mode {mode!r}", _FIX_EXPORT)
    points = np.stack([cols["x"], cols["y"], cols["z"]], 1)
    if height > 1 and width * height == n:
        return organised_cloud(points.reshape(height, width, 3), path)
    return PointCloud(points, path)


def _lzf_decompress(data: bytes, size: int) -> bytes:
    """LZF (liblzf) decompression, as PCL's ``binary_compressed`` uses."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
        else:  # back reference
            length = ctrl >> 5
            if length == 7:
                length += data[i]
                i += 1
            ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
            i += 1
            if ref < 0:
                raise ValueError("corrupt LZF stream")
            for _ in range(length + 2):
                out.append(out[ref])
                ref += 1
    if len(out) != size:
        raise ValueError(f"LZF data decompressed to {len(out)} bytes, expected {size}")
    return bytes(out)


def write_pcd(path: Path | str, points: np.ndarray, binary: bool = True) -> Path:
    """Write ``(N, 3)`` float points as PCD v0.7 (``binary`` or ``ascii``); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = np.asarray(points, dtype="<f4").reshape(-1, 3)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format (written by flawscope)\nVERSION 0.7\n"
        f"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {len(pts)}\nHEIGHT 1\n"
        f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\nDATA {'binary' if binary else 'ascii'}\n"
    )
    with path.open("wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(pts.tobytes())
        else:
            np.savetxt(fh, pts, fmt="%.9g")
    return path


# ------------------------------------------------------------------------------ text, npy


def _read_text(path: Path) -> np.ndarray:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("#", "//"))]
    if not lines:
        raise DataError(f"{path} holds no points", "write x, y, z per line")
    delimiter = "," if "," in lines[-1] else ";" if ";" in lines[-1] else None
    try:
        float(lines[0].replace(delimiter or " ", " ").split()[0])
    except (ValueError, IndexError):
        lines = lines[1:]  # header line
    rows = [ln.split(delimiter) for ln in lines]
    if not rows or min(len(r) for r in rows) < 3:
        raise DataError(f"{path}: every line needs x, y, z", "write at least 3 columns per line")
    return np.array([r[:3] for r in rows], dtype=np.float64)


def write_xyz(path: Path | str, points: np.ndarray, delimiter: str = " ") -> Path:
    """Write ``(N, 3)`` points as text, one ``x y z`` line each (``delimiter`` between)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(points, dtype=np.float64).reshape(-1, 3), fmt="%.9g",
               delimiter=delimiter)  # fmt: skip
    return path


def _read_npy(path: Path) -> PointCloud:
    arr = np.load(path, allow_pickle=False)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return organised_cloud(arr.astype(np.float32), path)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise DataError(
            f"{path}: a .npy point cloud must be (N, 3) or (H, W, 3), got {arr.shape}",
            "save x, y, z per point with np.save(path, points)",
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: .npy array is {arr.dtype}, not numbers", "save float points")
    return PointCloud(arr.astype(np.float32), path)

"""A vectorised z-buffer rasteriser in NumPy: which triangle each pixel centre sees, and where.

Scanline spans, all triangles at once: for every triangle and every pixel row of its screen
bounding box, the x interval where its three edge functions are >= 0 is solved in closed form;
the pixels of all spans are enumerated with ``np.repeat`` (in chunks of at most ``budget``), and
the nearest candidate per pixel wins (largest interpolated ``1 / depth``, which is linear in
screen space; ``np.maximum.at``). The result is the classic G-buffer: triangle id, depth and
perspective-correct barycentric coordinates per pixel. No back-face culling (a hole in a mesh
shows its inside). Triangles with a vertex closer than ``near`` mm to the camera plane are
dropped, not clipped: keep meshes tessellated finely enough that this never removes a visible
triangle (the holder plane is a grid for this reason).

Pixel centres lie at ``(i + 0.5, j + 0.5)``; a centre exactly on an edge shared by two triangles
is covered by both and the depth test picks one, so a closed surface has no cracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera

__all__ = ["Raster", "rasterize"]

_BUDGET = 3_000_000  # candidate (triangle, pixel) pairs per chunk: ~100 MB of temporaries


@dataclass
class Raster:
    """The G-buffer of one view.

    Attributes:
        face: ``(H, W)`` int64 index of the visible triangle, ``-1`` where nothing is hit.
        depth: ``(H, W)`` float32 camera-space depth (distance along the view axis), mm; ``inf``
            where nothing is hit.
        bary: ``(H, W, 3)`` float32 perspective-correct barycentric coordinates of the pixel
            centre in its triangle (weights of the triangle's three vertices; zero where
            nothing is hit).
    """

    face: np.ndarray
    depth: np.ndarray
    bary: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        """``(H, W)`` bool: a triangle is visible at the pixel."""
        return self.face >= 0


def _screen(camera: Camera, vertices: np.ndarray, faces: np.ndarray, near: float):
    """Screen positions (F, 3, 2), inverse depths (F, 3) and ids of the triangles in front."""
    uv, z = camera.project(vertices)
    tri_z = z[faces]
    ok = np.all(tri_z > near, axis=1)
    ids = np.flatnonzero(ok)
    return uv[faces[ids]], 1.0 / tri_z[ids], ids


def _edge_coefficients(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps (pixel x, y) -> barycentrics b0, b1 per triangle, and the signed areas.

    Returns ``coef (F, 2, 3)`` with ``b_k = coef[:, k, 0] x + coef[:, k, 1] y + coef[:, k, 2]``
    for k = 0, 1 (``b2 = 1 - b0 - b1``), and ``area (F,)`` (twice the signed area, px^2).
    """
    (x0, y0), (x1, y1), (x2, y2) = p[:, 0].T, p[:, 1].T, p[:, 2].T
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    inv = 1.0 / np.where(area == 0, 1.0, area)
    # b0 = ((x1 - x) (y2 - y) - (x2 - x) (y1 - y)) / area, expanded into a x + b y + c
    b0 = np.stack([(y1 - y2) * inv, (x2 - x1) * inv, (x1 * y2 - x2 * y1) * inv], 1)
    b1 = np.stack([(y2 - y0) * inv, (x0 - x2) * inv, (x2 * y0 - x0 * y2) * inv], 1)
    return np.stack([b0, b1], 1), area


def rasterize(
    camera: Camera,
    vertices: np.ndarray,
    faces: np.ndarray,
    near: float = 1e-3,
    budget: int = _BUDGET,
) -> Raster:
    """Rasterise a triangle mesh seen by ``camera`` at ``camera.height x camera.width`` px.

    Args:
        camera: the view (its ``width`` and ``height`` set the buffer size).
        vertices: ``(V, 3)`` world positions, mm.
        faces: ``(F, 3)`` vertex indices (any winding).
        near: triangles with a vertex at depth ``<= near`` mm are dropped.
        budget: candidate (triangle, pixel) pairs per chunk (memory ~ 40 bytes each).

    Returns:
        The :class:`Raster` (triangle ids index ``faces``).
    """
    h, w = camera.height, camera.width
    faces = np.asarray(faces, dtype=np.int64)
    p, inv_z, ids = _screen(camera, np.asarray(vertices, dtype=np.float64), faces, near)
    coef, area = _edge_coefficients(p)
    # pixel range covered by each bounding box (pixel i has its centre at i + 0.5)
    lo = np.ceil(p.min(axis=1) - 0.5).astype(np.int64)
    hi = np.floor(p.max(axis=1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [w - 1, h - 1])
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    keep = (nx > 0) & (ny > 0) & (area != 0) & np.all(np.isfinite(p), axis=(1, 2))
    sel = np.flatnonzero(keep)

    best = np.zeros(h * w, dtype=np.float64)  # largest 1 / depth so far (0 = nothing)
    winner = np.full(h * w, -1, dtype=np.int64)  # triangle index (into ``p``) per pixel
    # per kept triangle: affine maps pixel (x, y) -> b0, b1, b2 and -> 1 / depth
    k0, k1 = coef[sel, 0], coef[sel, 1]
    k2 = -(k0 + k1)
    k2[:, 2] += 1.0
    iz = inv_z[sel]
    kq = k0 * (iz[:, 0] - iz[:, 2])[:, None] + k1 * (iz[:, 1] - iz[:, 2])[:, None]
    kq[:, 2] += iz[:, 2]
    # scanline spans: for each triangle row, the x interval where b0, b1, b2 >= 0
    rows = ny[sel]
    tri = np.repeat(np.arange(len(sel)), rows)
    y = (lo[sel, 1][tri] + np.arange(len(tri)) - np.repeat(np.cumsum(rows) - rows, rows)) + 0.5
    x_min = np.full(len(tri), -np.inf)
    x_max = np.full(len(tri), np.inf)
    for kk in (k0, k1, k2):
        a = kk[tri, 0]
        c = kk[tri, 1] * y + kk[tri, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -c / a
        x_min = np.where(a > 0, np.maximum(x_min, bound), x_min)
        x_max = np.where(a < 0, np.minimum(x_max, bound), x_max)
        empty = (a == 0) & (c < 0)
        x_max[empty] = -np.inf
    first = np.maximum(np.ceil(x_min - 0.5), lo[sel, 0][tri])
    last = np.minimum(np.floor(x_max - 0.5), hi[sel, 0][tri])
    span = np.maximum(last - first + 1, 0).astype(np.int64)
    nz = span > 0
    tri, y, first, span = tri[nz], y[nz], first[nz].astype(np.int64), span[nz]
    ends = np.cumsum(span)
    start = 0
    while start < len(tri):
        # a chunk of rows whose pixels fit the budget (at least one row)
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + budget, side="right")), start + 1)
        cnt = span[start:stop]
        r = np.repeat(np.arange(start, stop), cnt)
        px = first[r] + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        t = tri[r]
        ry = y[r]
        q = kq[t, 0] * (px + 0.5) + kq[t, 1] * ry + kq[t, 2]
        pix = (ry - 0.5).astype(np.int64) * w + px
        np.maximum.at(best, pix, q)
        won = q >= best[pix]
        winner[pix[won]] = sel[t[won]]
        start = stop

    face = np.full(h * w, -1, dtype=np.int64)
    bary = np.zeros((h * w, 3), dtype=np.float32)
    depth = np.full(h * w, np.inf, dtype=np.float32)
    pix = np.flatnonzero(winner >= 0)
    t = winner[pix]
    x, y = pix % w + 0.5, pix // w + 0.5
    c = coef[t]
    b = np.empty((len(pix), 3))
    b[:, 0] = c[:, 0, 0] * x + c[:, 0, 1] * y + c[:, 0, 2]
    b[:, 1] = c[:, 1, 0] * x + c[:, 1, 1] * y + c[:, 1, 2]
    b[:, 2] = 1.0 - b[:, 0] - b[:, 1]
    persp = b * inv_z[t]  # perspective correction: weights / depth, renormalised
    total = persp.sum(axis=1, keepdims=True)
    face[pix] = ids[t]
    bary[pix] = (persp / total).astype(np.float32)
    depth[pix] = (1.0 / total[:, 0]).astype(np.float32)
    return Raster(face.reshape(h, w), depth.reshape(h, w), bary.reshape(h, w, 3))

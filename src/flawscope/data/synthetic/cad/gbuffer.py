"""Per-pixel scene attributes of one view: what is seen, where, facing which way.

:func:`gbuffer` rasterises a :class:`~flawscope.data.synthetic.cad.scene.Scene` with
:func:`~flawscope.data.synthetic.cad.raster.rasterize` and interpolates the world position and
the shading normal at every pixel centre. The light renderer shades from it; every renderer takes
its masks from it (foreground = pixels whose visible surface belongs to the part), so the masks
are exact for the Blender renders too (same geometry, same camera model).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera
from flawscope.data.synthetic.cad.raster import Raster, rasterize
from flawscope.data.synthetic.cad.scene import Scene

__all__ = ["GBuffer", "downsample", "gbuffer"]


@dataclass
class GBuffer:
    """Attributes of the visible surface at each pixel centre (``hit`` pixels only).

    Attributes:
        raster: triangle id, depth (mm) and barycentrics per pixel.
        hit: ``(H, W)`` bool, some surface is visible.
        obj: ``(H, W)`` int64 index into ``scene.objects``, ``-1`` where nothing is hit.
        part: ``(H, W)`` bool, the visible surface belongs to the part (the foreground).
        defect: ``(H, W)`` bool, the visible face was made or moved by a mesh defect.
        position: ``(N, 3)`` float64 world positions of the ``N`` hit pixels (row-major), mm.
        normal: ``(N, 3)`` float64 unit shading normals, turned towards the camera.
        face_normal: ``(N, 3)`` float64 unit geometric normals, turned towards the camera.
        backface: ``(N,)`` bool, the camera sees the back of the triangle (inside of a hole).
    """

    raster: Raster
    hit: np.ndarray
    obj: np.ndarray
    part: np.ndarray
    defect: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    face_normal: np.ndarray
    backface: np.ndarray

    @property
    def depth(self) -> np.ndarray:
        """``(H, W)`` float32 depth along the view axis, mm (``inf`` where nothing is hit)."""
        return self.raster.depth

    def scatter(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """``(N, ...)`` values of the hit pixels -> an ``(H, W, ...)`` image, ``fill`` elsewhere."""
        out = np.full(self.hit.shape + values.shape[1:], fill, dtype=values.dtype)
        out[self.hit] = values
        return out


def gbuffer(scene: Scene, camera: Camera) -> GBuffer:
    """Rasterise ``scene`` for ``camera`` and interpolate positions and normals."""
    g = scene.geometry
    r = rasterize(camera, g.vertices, g.faces)
    hit = r.hit
    face = r.face[hit]
    bary = r.bary[hit].astype(np.float64)
    corners = g.faces[face]  # (N, 3)
    position = np.einsum("nk,nkd->nd", bary, g.vertices[corners])
    normal = np.einsum("nk,nkd->nd", bary, g.normals[corners])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    face_normal = g.face_normals[face]
    view = camera.position - position
    backface = np.einsum("nd,nd->n", face_normal, view) < 0
    flip = np.where(backface, -1.0, 1.0)[:, None]
    face_normal = face_normal * flip
    normal = normal * flip
    # a shading normal turned away from the camera (interpolation at a silhouette) is bent back
    away = np.einsum("nd,nd->n", normal, view) < 0
    normal[away] = face_normal[away]
    obj = np.full(hit.shape, -1, dtype=np.int64)
    obj[hit] = g.face_object[face]
    part_index = [i for i, o in enumerate(scene.objects) if o.role == "part"]
    defect = np.zeros(hit.shape, dtype=bool)
    defect[hit] = g.face_defect[face]
    return GBuffer(
        r, hit, obj, np.isin(obj, part_index), defect, position, normal, face_normal, backface
    )


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks (area resampling); bool input gives coverage 0..1.

    Args:
        image: ``(H * factor, W * factor)`` array (bool or numeric).
        factor: supersampling factor >= 1.

    Returns:
        ``(H, W)`` float32.
    """
    a = image.astype(np.float32)
    if factor == 1:
        return a
    h, w = a.shape[0] // factor, a.shape[1] // factor
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)

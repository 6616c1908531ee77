"""Pinhole cameras, orbit paths and the stereo rig that mimics the scanner of seed 003.

The thesis (seed 003, section 3.5) rendered its CAD bricks with two Blender cameras that imitate
an ATOS GOM stereo scanner: both cameras "look at" the brick and follow Bezier curves that move
the scanner over the part, left to right or bottom to top. Here a rig centre moves along an
orbit arc (constant distance from the part, azimuth and elevation interpolated linearly between
the arc's ends) and carries two cameras ``baseline`` mm apart along the rig's horizontal axis,
both aimed at the same target point (toe-in, like the scanner).

Conventions: world coordinates in mm, z up. Camera coordinates follow OpenCV: x right, y down,
z forward (depth). Pixel ``(u, v)`` has its centre at ``(i + 0.5, j + 0.5)``; the principal
point is the image centre. Angles are in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["PATHS", "Camera", "look_at", "orbit_arc", "rotate", "stereo_rig"]

#: camera paths: (azimuth range, elevation range) in degrees, the azimuth relative to the path's
#: own heading. ``sweep`` (across the part) and ``rise`` (from low to high) are the two scanner
#: paths of the thesis; ``top`` stays nearly overhead, like a fixed inspection camera
PATHS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "sweep": ((-35.0, 35.0), (62.0, 62.0)),
    "rise": ((0.0, 0.0), (45.0, 85.0)),
    "top": ((-20.0, 20.0), (72.0, 88.0)),
}


def rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``points @ rotation.T`` for ``(N, 3)`` points: each row rotated by ``rotation`` (3, 3).

    Uses ``einsum`` rather than BLAS: a multi-threaded BLAS on a tall (N, 3) product is slower
    by 10-30x on a busy 2-core machine.
    """
    return np.einsum("nd,ed->ne", points, rotation, optimize=False)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera.

    Attributes:
        position: ``(3,)`` float64 centre of projection, mm (world).
        rotation: ``(3, 3)`` float64 world-to-camera rotation; its rows are the camera's right,
            down and forward unit vectors in world coordinates.
        focal_px: focal length in pixels (square pixels).
        width: image width, px.
        height: image height, px.
        name: label, e.g. ``"left"``.
    """

    position: np.ndarray
    rotation: np.ndarray
    focal_px: float
    width: int
    height: int
    name: str = ""

    @property
    def forward(self) -> np.ndarray:
        """Viewing direction, ``(3,)`` unit vector (world)."""
        return self.rotation[2]

    @property
    def fov_deg(self) -> float:
        """Horizontal field of view, degrees."""
        return float(np.degrees(2 * np.arctan(self.width / (2 * self.focal_px))))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(N, 3)`` mm -> camera coordinates ``(N, 3)`` mm (z = depth)."""
        return rotate(np.asarray(points, dtype=np.float64) - self.position, self.rotation)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` -> pixel coordinates ``(N, 2)`` (u, v) and depth ``(N,)`` mm.

        Points behind the camera get non-finite or meaningless pixel coordinates: check the depth.
        """
        c = self.to_camera(points)
        z = c[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.focal_px * c[:, 0] / z + self.width / 2
            v = self.focal_px * c[:, 1] / z + self.height / 2
        return np.stack([u, v], 1), z

    def scaled(self, factor: int) -> Camera:
        """The same camera with ``factor`` times as many pixels per side (supersampling)."""
        return replace(
            self,
            focal_px=self.focal_px * factor,
            width=self.width * factor,
            height=self.height * factor,
        )


def look_at(
    eye: np.ndarray,
    target: np.ndarray,
    focal_px: float,
    width: int,
    height: int,
    name: str = "",
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> Camera:
    """A camera at ``eye`` aimed at ``target`` (mm) with image rows level with the ground.

    When the view is (nearly) parallel to ``up`` the image's up direction falls back to +y.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    up_v = np.asarray(up, dtype=np.float64)
    right = np.cross(forward, up_v)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Camera(eye, np.stack([right, down, forward]), float(focal_px), width, height, name)


def orbit_arc(
    t: np.ndarray | float,
    target: np.ndarray,
    distance: float,
    azimuth_deg: tuple[float, float],
    elevation_deg: tuple[float, float],
) -> np.ndarray:
    """Points on an orbit arc around ``target``: ``(N, 3)`` mm for path parameters ``t`` in [0, 1].

    Azimuth (from +x, counter-clockwise seen from above) and elevation (above the holder plane)
    move linearly from the first to the second value of their range as ``t`` goes from 0 to 1;
    every point is ``distance`` mm from ``target``.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    az = np.radians(azimuth_deg[0] + t * (azimuth_deg[1] - azimuth_deg[0]))
    el = np.radians(elevation_deg[0] + t * (elevation_deg[1] - elevation_deg[0]))
    offset = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    return np.asarray(target, dtype=np.float64) + distance * offset


def stereo_rig(
    centre: np.ndarray,
    target: np.ndarray,
    baseline: float,
    focal_px: float,
    width: int,
    height: int,
) -> tuple[Camera, Camera]:
    """Two cameras ``baseline`` mm apart, centred on ``centre``, both looking at ``target``.

    The cameras sit on the rig's horizontal axis (perpendicular to the view direction and to z;
    the image's x axis of a camera at the rig centre), left camera first.
    """
    centre = np.asarray(centre, dtype=np.float64)
    mid = look_at(centre, target, focal_px, width, height)
    right = mid.rotation[0]
    left_cam = look_at(centre - right * baseline / 2, target, focal_px, width, height, "left")
    right_cam = look_at(centre + right * baseline / 2, target, focal_px, width, height, "right")
    return left_cam, right_cam

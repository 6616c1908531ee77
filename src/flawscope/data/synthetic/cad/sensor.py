"""What the camera adds to a rendered image: lens blur, vignetting and sensor noise.

Applied to the display-referred output of every renderer (light and Blender alike), with the
scene's :class:`~flawscope.data.synthetic.cad.scene.Look`:

* blur: Gaussian, sigma ``look.blur_px`` output pixels (optics, slight defocus);
* vignette: ``1 - look.vignette x r^2`` with ``r`` the distance from the centre over the
  half-diagonal;
* noise: Gaussian with standard deviation ``look.noise x sqrt(value / 0.5)`` plus a read-noise
  floor of ``look.noise / 4`` (shot noise grows with the signal), then clipped to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from flawscope.data.synthetic.cad.scene import Look

__all__ = ["apply_sensor"]


def apply_sensor(image: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Blur, vignette and noise on a display image ``(H, W)`` float32 in [0, 1].

    Returns:
        ``(H, W)`` float32 in [0, 1]; the same ``rng`` state gives the same noise.
    """
    h, w = image.shape
    out = image.astype(np.float32)
    if look.blur_px > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), look.blur_px)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    out = out * (1.0 - look.vignette * r2)
    sigma = look.noise * np.sqrt(np.clip(out, 0.0, 1.0) / 0.5) + look.noise / 4
    out = out + sigma * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)

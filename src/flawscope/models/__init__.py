"""Detectors behind one ``Detector`` interface, registered by short name.

Importing this package registers every built-in detector.
"""

from flawscope.models import (  # noqa: F401  (registers the detectors)
    cae,
    dense_cae,
    padim,
    patchcore,
    strided_ae,
    vae,
)
from flawscope.models.base import Detector, Prediction, available, create, detector_class

__all__ = ["Detector", "Prediction", "available", "create", "detector_class"]

"""Score images with an exported ONNX file on onnxruntime (no PyTorch model needed).

:class:`OnnxDetector` has the ``predict`` of the PyTorch detectors (same shapes, dtypes and
numbers, up to float rounding): it runs the graph written by
:func:`flawscope.models.onnx_export.export_onnx` and then the NumPy post-processing that the
PyTorch detectors run themselves (:func:`flawscope.models.features.smooth_maps`,
:func:`flawscope.scoring.aggregate`,
:func:`flawscope.models.reconstruction.reconstruction_prediction`). :func:`load_onnx_inspector`
gives an :class:`~flawscope.inspector.Inspector` whose detector is one (reading, preprocessing,
thresholds and groups unchanged), after checking that the file was exported from that model
directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flawscope.config import ScoringConfig
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.base import Prediction
from flawscope.models.features import smooth_maps
from flawscope.models.onnx_export import META_VERSION, ONNX_FILE
from flawscope.models.onnx_graphs import INPUT_NAME, POSTPROCESS
from flawscope.models.reconstruction import reconstruction_prediction
from flawscope.scoring import aggregate

#: images per onnxruntime call: small calls keep the activations in cache (PatchCore, 256 px,
#: 2 cores: 131 images/s in calls of 2, 85 in calls of 16) and bound the temporaries (the
#: distance block is calls x h x w x bank_chunk float32); results do not depend on it
DEFAULT_BATCH = 2


def _reexport(path: Path) -> str:
    folder = path.parent if path.name == ONNX_FILE else "MODEL_DIR"
    return f"re-export it with `flawscope export {folder} --format onnx`"


class OnnxDetector:
    """A detector backed by an exported ONNX file (predict only).

    Args:
        path: the ``.onnx`` file (its ``.data`` file beside it, if it has one).
        threads: onnxruntime intra-op threads; None = onnxruntime's default (all cores).
        batch_size: images per onnxruntime call (memory bound; results do not depend on it).
        expected_model_id: refuse a file exported from another model (None = no check).

    Attributes:
        name: the detector's registered name (e.g. ``"patchcore"``); kind: post-processing
            family; model_id; channels, image_size: C and S of the input; scoring: the
            :class:`ScoringConfig` the file was exported with; session: the
            ``onnxruntime.InferenceSession``.

    Raises:
        ModelDirError: the file is missing or unreadable, lacks flawscope metadata (not
            exported by flawscope, or by an incompatible version), or comes from another model.
    """

    def __init__(
        self,
        path: Path | str,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        expected_model_id: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelDirError(f"ONNX file {self.path} does not exist", _reexport(self.path))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types; one line here
            first = " ".join(str(exc).split())[:160]
            raise ModelDirError(
                f"{self.path} cannot be loaded by onnxruntime ({first})", _reexport(self.path)
            ) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = meta
        if meta.get("flawscope.format_version") != META_VERSION:
            raise ModelDirError(
                f"{self.path} has no flawscope metadata of version {META_VERSION} (found "
                f"{meta.get('flawscope.format_version')!r})",
                _reexport(self.path),
            )
        self.model_id = meta["flawscope.model_id"]
        if expected_model_id is not None and self.model_id != expected_model_id:
            raise ModelDirError(
                f"{self.path} was exported from model {self.model_id!r}, not from model "
                f"{expected_model_id!r}",
                _reexport(self.path),
            )
        self.name = meta["flawscope.model"]
        self.kind = meta["flawscope.kind"]
        if self.kind not in POSTPROCESS:
            raise ModelDirError(
                f"{self.path} needs post-processing {self.kind!r}, unknown to this flawscope",
                "upgrade flawscope, or " + _reexport(self.path),
            )
        shape = json.loads(meta["flawscope.input"])
        self.channels, self.image_size = int(shape["channels"]), int(shape["size"])
        self.outputs: list[str] = json.loads(meta["flawscope.outputs"])
        self.scoring = ScoringConfig.model_validate_json(meta["flawscope.scoring"])
        self.batch_size = max(1, int(batch_size))
        self.fit_stats: dict[str, Any] = {}
        self.history: dict[str, list[float]] = {}

    def predict(self, batch: torch.Tensor | np.ndarray) -> Prediction:
        """Score ``(N, C, S, S)`` float32 images in [0, 1] like the PyTorch detector.

        Returns:
            ``image_scores`` ``(N,)`` and ``anomaly_maps`` ``(N, S, S)`` float32 NumPy arrays,
            and for autoencoders ``reconstructions`` ``(N, C, S, S)`` float32.

        Raises:
            DataError: images of the wrong shape (C and S are fixed by the export).
        """
        images = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        images = np.ascontiguousarray(images, dtype=np.float32)
        c, s = self.channels, self.image_size
        if images.ndim != 4 or images.shape[1:] != (c, s, s):
            raise DataError(
                f"images have shape {tuple(images.shape)}, the exported {self.name} model needs "
                f"(N, {c}, {s}, {s})",
                "load the images through the Inspector, which resizes them to the model size",
            )
        if len(images) == 0:
            recon = np.zeros((0, c, s, s), np.float32) if self.kind == "reconstruction" else None
            return Prediction(np.zeros(0, np.float32), np.zeros((0, s, s), np.float32), recon)
        outs = self.run(images)
        if self.kind == "reconstruction":
            return reconstruction_prediction(images, outs["reconstructions"], self.scoring)
        maps = smooth_maps(outs["raw_maps"], self.scoring.sigma)
        if self.kind == "patchcore":
            scores = outs["image_scores"].astype(np.float32)
        else:  # padim: the maximum of the smoothed map (Sec. 3.3), as PadimDetector.predict
            scores = aggregate(maps, "max")
        return Prediction(scores, maps)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The raw graph outputs by name for ``(N >= 1, C, S, S)`` float32 images.

        onnxruntime is called with ``batch_size`` images at a time; the outputs are concatenated.
        """
        parts = [
            self.session.run(self.outputs, {INPUT_NAME: images[i : i + self.batch_size]})
            for i in range(0, len(images), self.batch_size)
        ]
        return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(self.outputs)}

    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None) -> OnnxDetector:
        """Refused: an exported graph only scores."""
        raise ConfigError(
            f"the ONNX {self.name} model cannot be trained",
            "fit the PyTorch model with `flawscope fit`, then export it again",
        )

    def save(self, directory: Path) -> None:
        """Refused: the ONNX file is not a model directory's weights."""
        raise ConfigError(
            f"the ONNX {self.name} model cannot be saved as a model directory",
            "save the PyTorch Inspector; copy the .onnx file itself to share it",
        )

    def load(self, directory: Path) -> OnnxDetector:
        """Refused: construct a new :class:`OnnxDetector` from the file instead."""
        raise ConfigError(
            f"the ONNX {self.name} model cannot load a model directory",
            "use load_onnx_inspector(MODEL_DIR) or OnnxDetector(FILE.onnx)",
        )

    def describe(self) -> dict[str, Any]:
        """Name, runtime and file, for reports."""
        return {"name": self.name, "runtime": "onnxruntime", "file": str(self.path)}


def load_onnx_inspector(
    model_dir: Path | str,
    onnx_path: Path | str | None = None,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> Any:
    """The model directory's :class:`~flawscope.inspector.Inspector`, scoring on onnxruntime.

    Loads the Inspector as usual (config, thresholds, groups, preprocessing) and replaces its
    detector (the tile detector of a tiled model) by an :class:`OnnxDetector`.

    Args:
        model_dir: the model directory; onnx_path: its export (None = ``model_dir/model.onnx``).
        threads, batch_size: passed to :class:`OnnxDetector`.

    Raises:
        ModelDirError: the directory or the ONNX file is missing or damaged, or the file was
            exported from another model (its model id differs).
    """
    from flawscope.inspector import Inspector
    from flawscope.models.tiled import TiledDetector

    directory = Path(model_dir)
    insp = Inspector.load_dir(directory)
    path = directory / ONNX_FILE if onnx_path is None else Path(onnx_path)
    if not path.is_file():
        raise ModelDirError(
            f"ONNX file {path} does not exist",
            f"export it with `flawscope export {directory} --format onnx`",
        )
    onnx_detector = OnnxDetector(path, threads, batch_size, expected_model_id=insp.model_id)
    if isinstance(insp.detector, TiledDetector):
        insp.detector.inner = onnx_detector
    else:
        insp.detector = onnx_detector
    return insp

"""The Inspector: the trained pipeline (input format + detector + threshold), saved to one folder.

``Inspector.fit`` reads good images, holds out a share of them, trains the detector on the rest,
scores the hold-out and sets the threshold from those scores (no defect labels needed).
``Inspector.load`` restores it from its model directory without any training data.

Model directory layout::

    config.yaml           InspectorConfig (model, training, scoring, threshold settings)
    weights.safetensors   detector weights
    view_masks.safetensors  mean foreground mask per camera view (only with preprocess.mean_mask)
    inspector.json        format version, flawscope version, threshold, hold-out score statistics,
                          loss history, fit statistics (time, peak memory), model id
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from flawscope import __version__
from flawscope.config import InspectorConfig
from flawscope.data.dataset import (
    LoadedBatch,
    Sample,
    detect_channels,
    load_images,
    split_holdout,
    training_samples,
)
from flawscope.data.io import read_image
from flawscope.errors import ConfigError, DataError, FlawscopeError, ModelDirError
from flawscope.models.base import Prediction, create
from flawscope.models.tiled import TiledDetector
from flawscope.preprocess.pipeline import Preprocessor
from flawscope.resources import peak_memory_mb
from flawscope.scoring import HoldoutStats, aggregate, threshold_from_good, verdicts

log = logging.getLogger("flawscope")

#: bumped whenever the model directory layout changes incompatibly
FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
STATE_FILE = "inspector.json"
VIEW_MASKS_FILE = "view_masks.safetensors"


@dataclass
class BatchResult:
    """Predictions for one batch of loaded images (see :class:`LoadedBatch` for the inputs)."""

    loaded: LoadedBatch
    prediction: Prediction
    verdicts: list[str]


class Inspector:
    """A fitted pipeline.

    Attributes:
        config: the :class:`InspectorConfig`.
        detector: the fitted detector (``predict`` returns maps at the input size S x S).
        threshold: image-score threshold; an image fails when its score is strictly greater.
        holdout_scores: ``(M,)`` float32 scores of the good hold-out images.
        history: per-epoch training and validation loss.
        fit_stats: how the fit went: ``seconds`` (wall time of :meth:`fit`), ``peak_memory_mb``
            (peak resident memory of the process up to the end of the fit, MiB; None where the
            OS does not tell), ``train_images``, ``holdout_images`` and the detector's own
            statistics under ``detector`` (e.g. the PatchCore memory-bank size).
        tuning: None while the threshold comes from the good hold-out; after
            :meth:`tune_threshold`, how it was chosen on labelled images.
        model_id: short hash of the weights and config, identifying this model in results.
    """

    def __init__(self, config: InspectorConfig) -> None:
        """Build the (unfitted) detector named by ``config``.

        Raises:
            ConfigError: unknown model name, invalid detector params, or ``model.channels`` still
                ``"auto"`` (only :meth:`fit` can resolve it, from the training images).
        """
        if config.model.channels == "auto":
            raise ConfigError(
                'model.channels is "auto", which only Inspector.fit can resolve',
                "fit with Inspector.fit, or set model.channels to 1 or 3",
            )
        self.config = config
        self.preprocessor = Preprocessor(config.preprocess, config.model.exposure)
        self.detector = create(
            config.model.name, model=config.model, training=config.training, scoring=config.scoring
        )
        p = config.preprocess
        if p.tile is not None:
            self.detector = TiledDetector(
                self.detector, p.tile, p.tile_context, config.training.batch_size, config.scoring
            )
        self.threshold = float("nan")
        self.holdout_scores = np.zeros(0, dtype=np.float32)
        self.history: dict[str, list[float]] = {}
        self.fit_stats: dict[str, Any] = {}
        self.tuning: dict[str, Any] | None = None
        self.model_id = ""
        self.created = ""

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, train_path: Path | str, config: InspectorConfig | None = None) -> Inspector:
        """Learn from the good images under ``train_path`` (a folder, or MVTec root's train/good).

        Raises:
            DataError: missing folder, no images, or fewer than 2 usable images.
            ConfigError: invalid settings (e.g. unknown model name).
        """
        started = time.perf_counter()
        config = config or InspectorConfig()
        auto = config.model.channels == "auto"
        if auto:  # validated with 1 channel first, re-built below if the images have colour
            config = config.model_copy(deep=True)
            config.model.channels = 1
        insp = cls(config)  # validates the model name and params before reading any data
        samples = training_samples(train_path)
        if auto and detect_channels(samples) == 3:
            config.model.channels = 3
            insp = cls(config)
        m, t = config.model, config.training
        train_files, hold_files = split_holdout(samples, t.holdout_fraction, t.seed)
        if config.preprocess.mean_mask:
            views = insp.preprocessor.fit_view_masks(_readable(train_files))
            log.info("mean masks of %d views (%s images)", len(views), sum(views.values()))
        train, held = insp.read(train_files).images, insp.read(hold_files)
        hold = held.images
        if len(train) == 0 or len(hold) == 0:
            raise DataError(
                f"only {len(train) + len(hold)} of {len(samples)} training images could be read"
                + (
                    f" ({len(train)} for training, {len(hold)} for the hold-out)"
                    if len(train) + len(hold)
                    else ""
                ),
                "check the warnings above and provide at least 2 readable good images",
            )
        log.info(
            "training %s on %d good images, holding out %d for early stopping and the threshold",
            m.name,
            len(train),
            len(hold),
        )
        insp.detector.fit(train, hold)
        insp.history = getattr(insp.detector, "history", {})
        insp.calibrate(held)
        insp.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        insp.fit_stats = {
            "seconds": round(time.perf_counter() - started, 2),
            "peak_memory_mb": peak_memory_mb(),
            "train_images": len(train),
            "holdout_images": len(hold),
            "detector": getattr(insp.detector, "fit_stats", None),
        }
        return insp

    def calibrate(self, good: LoadedBatch) -> float:
        """Set the threshold from the scores of good hold-out images (never trained on).

        Args:
            good: M >= 1 good images read by :meth:`read` (never trained on).

        Returns:
            The threshold (``threshold.method`` of the config applied to the M scores); any
            earlier tuning on labelled images is dropped.
        """
        bs = self.config.training.batch_size
        self.holdout_scores = np.concatenate(
            [self.predict(good.slice(i, i + bs)).image_scores for i in range(0, len(good), bs)]
        )
        th = self.config.threshold
        self.threshold = threshold_from_good(self.holdout_scores, th.method, th.quantile)
        self.tuning = None
        return self.threshold

    # ------------------------------------------------------------------ predict
    def read(self, samples: Sequence[Sample], keep_originals: bool = False) -> LoadedBatch:
        """Read ``samples`` in this inspector's input format (unreadable ones skipped, warned)."""
        m, p = self.config.model, self.config.preprocess
        return load_images(
            samples,
            m.image_size if p.tile is None else p.tile_target,
            m.channels,
            m.min_image_side,
            keep_originals,
            m.keep_aspect,
            self.preprocessor if self.preprocessor.active else None,
        )

    def predict(self, loaded: LoadedBatch) -> Prediction:
        """Scores and anomaly maps of images read by :meth:`read`.

        With background segmentation the anomaly maps are set to 0 outside the foreground and
        the image score is recomputed from the masked map (``scoring.aggregation``), so the
        background never raises the score.
        """
        pred = self.detector.predict(loaded.images)
        if loaded.foreground is not None and len(loaded.foreground):
            maps = (pred.anomaly_maps * loaded.foreground).astype(np.float32)
            s = self.config.scoring
            pred = Prediction(
                aggregate(maps, s.aggregation, s.top_k_percent), maps, pred.reconstructions
            )
        return pred

    def predict_batches(
        self, samples: Sequence[Sample], batch_size: int | None = None, keep_originals: bool = False
    ) -> Iterator[BatchResult]:
        """Score ``samples`` batch by batch (memory flat in the number of images).

        Yields one :class:`BatchResult` per batch; unreadable images appear in ``loaded.skipped``.
        """
        bs = batch_size or self.config.training.batch_size
        for i in range(0, len(samples), bs):
            loaded = self.read(samples[i : i + bs], keep_originals)
            if len(loaded.samples):
                pred = self.predict(loaded)
                yield BatchResult(loaded, pred, self.verdicts(pred.image_scores))
            else:
                yield BatchResult(loaded, Prediction(np.zeros(0), np.zeros((0, 0, 0))), [])

    def verdicts(self, scores: np.ndarray) -> list[str]:
        """``"fail"`` where score > threshold, else ``"pass"``."""
        return verdicts(scores, self.threshold)

    def tune_threshold(self, samples: Sequence[Sample], beta: float = 1.0) -> dict[str, Any]:
        """Set the threshold that maximises F-beta on labelled validation images (seed 002).

        Scores ``samples`` (good and defective images, e.g. an MVTec-style ``test/`` tree
        read by :func:`flawscope.data.dataset.labelled_samples`) and picks, among all candidate
        thresholds, the one with the best F-beta (:func:`flawscope.metrics.best_f_beta`). Use
        images that the final evaluation does not use, or the evaluation is optimistic.

        Returns:
            The record kept in ``inspector.json`` as ``threshold_tuning``: ``beta``,
            ``n_good``, ``n_defective``, ``f_beta``, ``precision``, ``recall``, ``threshold`` and
            ``previous_threshold``.

        Raises:
            DataError: no readable image, or only good / only defective images.
            ConfigError: ``beta <= 0``.
        """
        from flawscope.metrics import best_f_beta, image_metrics

        scores, labels = [], []
        for batch in self.predict_batches(samples):
            scores.append(batch.prediction.image_scores)
            labels += [s.label for s in batch.loaded.samples]
        if not labels:
            raise DataError("none of the validation images could be read", "check the warnings")
        y, sc = np.asarray(labels), np.concatenate(scores)
        best, threshold = best_f_beta(y, sc, beta)
        at = image_metrics(y, sc, threshold)
        self.tuning = {
            "beta": beta,
            "n_good": at["n_good"],
            "n_defective": at["n_defective"],
            "f_beta": best,
            "precision": at["precision"],
            "recall": at["recall"],
            "threshold": threshold,
            "previous_threshold": self.threshold,
        }
        self.threshold = threshold
        return self.tuning

    @property
    def threshold_method(self) -> str:
        """How the threshold was chosen, in words."""
        if self.tuning:
            t = self.tuning
            return (
                f"max F{t['beta']:g} on {t['n_good']} good + {t['n_defective']} defective "
                "labelled validation images"
            )
        th = self.config.threshold
        rule = "max" if th.method == "max" else f"{th.quantile:g} quantile"
        return f"{rule} of {len(self.holdout_scores)} hold-out good images"

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path | str) -> Path:
        """Write the model directory (config, weights, threshold, hold-out statistics)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.to_yaml(d / CONFIG_FILE)
        self.detector.save(d)
        if self.preprocessor.view_masks:
            masks = {k: v.astype(np.uint8) for k, v in self.preprocessor.view_masks.items()}
            save_file(masks, str(d / VIEW_MASKS_FILE))
        self.model_id = _model_id(d)
        self.save_state(d)
        return d

    def save_state(self, directory: Path | str) -> None:
        """(Re)write only ``inspector.json`` (threshold, statistics) of a saved model directory."""
        state: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "flawscope_version": __version__,
            "model_id": self.model_id,
            "created": self.created,
            "threshold": self.threshold,
            "threshold_method": self.threshold_method,
            "holdout_stats": HoldoutStats.of(self.holdout_scores).to_dict(),
            "holdout_scores": [float(s) for s in self.holdout_scores],
            "history": self.history,
            "fit_stats": self.fit_stats,
            "threshold_tuning": self.tuning,
        }
        path = Path(directory) / STATE_FILE
        tmp = path.with_suffix(".json.tmp")  # replaced in one step: never half-written
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    @classmethod
    def load_dir(cls, directory: Path | str) -> Inspector:
        """Load a model directory written by :meth:`save`; no training data needed.

        Raises:
            ModelDirError: the folder is missing, incomplete, damaged, or from an incompatible
                flawscope format version.
        """
        d = Path(directory)
        if not d.is_dir():
            raise ModelDirError(
                f"model directory {d} does not exist", "train one with `flawscope fit`"
            )
        state_path = d / STATE_FILE
        if not state_path.is_file() or not (d / CONFIG_FILE).is_file():
            raise ModelDirError(
                f"{d} is not a flawscope model directory (no {STATE_FILE} / {CONFIG_FILE})",
                "pass the folder written by `flawscope fit --out`",
            )
        try:
            state = json.loads(state_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelDirError(
                f"{state_path} is damaged ({exc})", "re-run `flawscope fit`"
            ) from exc
        fmt = state.get("format_version")
        if fmt != FORMAT_VERSION:
            raise ModelDirError(
                f"model directory {d} has format version {fmt} (flawscope "
                f"{state.get('flawscope_version', '?')}); this flawscope {__version__} reads "
                f"format {FORMAT_VERSION}",
                "re-train it with `flawscope fit`, or use the flawscope version that wrote it",
            )
        insp = cls(InspectorConfig.from_yaml(d / CONFIG_FILE))
        insp.detector.load(d)
        if (d / VIEW_MASKS_FILE).is_file():
            try:
                masks = load_file(str(d / VIEW_MASKS_FILE))
            except (OSError, SafetensorError) as exc:
                raise ModelDirError(
                    f"{d / VIEW_MASKS_FILE} is damaged ({exc})", "re-run `flawscope fit`"
                ) from exc
            insp.preprocessor.view_masks = {k: v.astype(bool) for k, v in masks.items()}
        insp.threshold = float(state["threshold"])
        insp.holdout_scores = np.asarray(state.get("holdout_scores", []), dtype=np.float32)
        insp.history = state.get("history", {})
        insp.fit_stats = state.get("fit_stats", {})
        insp.tuning = state.get("threshold_tuning")
        insp.model_id = state.get("model_id", "")
        insp.created = state.get("created", "")
        return insp


def _readable(samples: Sequence[Sample]) -> Iterator[tuple[Path, np.ndarray]]:
    """``(path, image)`` of every sample that can be read (the others are warned about later)."""
    for s in samples:
        try:
            yield s.path, read_image(s.path)
        except FlawscopeError:
            continue


def _model_id(directory: Path) -> str:
    """12-hex-digit SHA-256 of the weights and config files: identifies a trained model."""
    h = hashlib.sha256()
    for name in sorted(
        p.name for p in directory.iterdir() if p.suffix in {".safetensors", ".yaml"}
    ):
        h.update((directory / name).read_bytes())
    return h.hexdigest()[:12]

"""The Inspector: the trained pipeline (input format + detector + threshold), saved to one folder.

``Inspector.fit`` reads good images, holds out a share of them, trains the detector on the rest,
scores the hold-out and sets the threshold from those scores (no defect labels needed).
``Inspector.load`` restores it from its model directory without any training data.

Model directory layout::

    config.yaml           InspectorConfig (model, training, scoring, threshold settings)
    weights.safetensors   detector weights
    view_masks.safetensors  mean foreground mask per camera view (only with preprocess.mean_mask)
    groups.safetensors    k-means centroids of the discovered groups (only with groups.source
                          = discover)
    inspector.json        format version, flawscope version, thresholds (global and per group),
                          hold-out score statistics, loss history, fit statistics (time, peak
                          memory), model id
"""

from __future__ import annotations

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
from flawscope.data.manifest import ManifestEntry, apply_manifest, name_key
from flawscope.errors import ConfigError, DataError, FlawscopeError, ModelDirError
from flawscope.models.base import Prediction, create
from flawscope.models.tiled import TiledDetector
from flawscope.models.weights import model_id, write_state
from flawscope.preprocess.pipeline import Preprocessor
from flawscope.resources import peak_memory_mb
from flawscope.scoring import HoldoutStats, aggregate
from flawscope.scoring.group_thresholds import NO_GROUP, GroupThresholds

log = logging.getLogger("flawscope")

#: bumped whenever the model directory layout changes incompatibly
FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
STATE_FILE = "inspector.json"
VIEW_MASKS_FILE = "view_masks.safetensors"
GROUPS_FILE = "groups.safetensors"
#: longest side of the images the group embedding sees (larger inputs are downscaled)
EMBED_SIDE = 256


@dataclass
class BatchResult:
    """Predictions for one batch of loaded images (see :class:`LoadedBatch` for the inputs).

    Attributes:
        loaded: the images and their samples.
        prediction: ``(N,)`` image scores and ``(N, S, S)`` anomaly maps.
        verdicts: N ``"pass"`` / ``"fail"``.
        groups: N group keys (``""`` = no group).
        thresholds: ``(N,)`` float64 threshold that judged each image (its group's).
        far: ``(N,)`` bool, True where a discovered group model found the image far from every
            group (a view or part it never saw).
    """

    loaded: LoadedBatch
    prediction: Prediction
    verdicts: list[str]
    groups: list[str]
    thresholds: np.ndarray
    far: np.ndarray

    def normalised_scores(self, thresholds: GroupThresholds) -> np.ndarray:
        """``(N,)`` scores with 0 = median good score and 1.0 = the image's group threshold."""
        return thresholds.normalise(self.prediction.image_scores, self.groups)


class Inspector:
    """A fitted pipeline.

    Attributes:
        config: the :class:`InspectorConfig`.
        detector: the fitted detector (``predict`` returns maps at the input size S x S).
        thresholds: the global threshold and one per group
            (:class:`~flawscope.scoring.group_thresholds.GroupThresholds`); an image fails when
            its score is strictly greater than its group's threshold.
        threshold: the global threshold (read-only; ``thresholds.global_threshold``).
        group_model: the discovered groups (``groups.source = "discover"``) or None.
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
        self.thresholds = GroupThresholds(float("nan"), float("nan"))
        self.group_model: Any = None
        self.holdout_scores = np.zeros(0, dtype=np.float32)
        self.holdout_groups: list[str] = []
        self.history: dict[str, list[float]] = {}
        self.fit_stats: dict[str, Any] = {}
        self.tuning: dict[str, Any] | None = None
        self.model_id = ""
        self.created = ""

    @property
    def threshold(self) -> float:
        """The global threshold (images without a group, or of a fallback group)."""
        return self.thresholds.global_threshold

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        train_path: Path | str,
        config: InspectorConfig | None = None,
        manifest: dict[Path, ManifestEntry] | None = None,
    ) -> Inspector:
        """Learn from the good images under ``train_path`` (a folder, or MVTec root's train/good).

        Args:
            train_path: folder of good images, or an MVTec category folder.
            config: settings (default :class:`InspectorConfig`).
            manifest: group keys of the training images
                (:func:`flawscope.data.manifest.read_manifest`); needed when
                ``groups.source == "manifest"``.

        Raises:
            DataError: missing folder, no images, or fewer than 2 usable images.
            ConfigError: invalid settings (e.g. unknown model name), or groups from a manifest
                without one.
        """
        started = time.perf_counter()
        config = config or InspectorConfig()
        auto = config.model.channels == "auto"
        if auto:  # validated with 1 channel first, re-built below if the images have colour
            config = config.model_copy(deep=True)
            config.model.channels = 1
        insp = cls(config)  # validates the model name and params before reading any data
        if config.groups.source == "manifest" and manifest is None:
            raise ConfigError(
                "groups.source is 'manifest' but no manifest was given",
                "pass --manifest FILE.csv (columns path,group,batch,label)",
            )
        samples = training_samples(train_path)
        if manifest is not None:
            samples = apply_manifest(samples, manifest)
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
        if config.groups.source == "discover":
            from flawscope.grouping import GroupModel

            g = config.groups
            insp.group_model = GroupModel.fit(
                insp._embed(train), g.k, g.k_max, g.far_factor, config.training.seed
            )
            log.info("discovered groups: %s", insp.group_model.describe())
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

    def calibrate(self, good: LoadedBatch) -> GroupThresholds:
        """Set the thresholds from the scores of good hold-out images (never trained on).

        Args:
            good: M >= 1 good images read by :meth:`read` (never trained on).

        Returns:
            The global and per-group thresholds (``threshold`` settings of the config applied to
            the M scores, per group with ``groups.min_images``); any earlier tuning on labelled
            images is dropped.
        """
        bs = self.config.training.batch_size
        scores, groups = [], []
        for i in range(0, len(good), bs):
            part = good.slice(i, i + bs)
            scores.append(self.predict(part).image_scores)
            groups += self.groups_of(part)[0]
        self.holdout_scores = np.concatenate(scores)
        self.holdout_groups = groups
        th = self.config.threshold
        self.thresholds = GroupThresholds.from_good(
            self.holdout_scores,
            groups,
            th.method,
            th.quantile,
            th.z,
            th.sensitivity,
            self.config.groups.min_images,
        )
        self.tuning = None
        return self.thresholds

    def _embed(self, images: Any) -> np.ndarray:
        """``(N, D)`` backbone embeddings of model-input images (downscaled to EMBED_SIDE)."""
        import torch.nn.functional as F

        from flawscope.grouping import image_embeddings

        side = max(images.shape[-2:])
        if side > EMBED_SIDE:
            images = F.interpolate(images, scale_factor=EMBED_SIDE / side, mode="area")
        return image_embeddings(images)

    def groups_of(self, loaded: LoadedBatch) -> tuple[list[str], np.ndarray]:
        """The group key of every loaded image, and whether it is far from all groups.

        A group already set on a sample (by a manifest or the caller) wins over the configured
        source.

        Returns:
            ``(N group keys, (N,) bool far)``; keys are ``""`` where the source gives none
            (``groups.source`` none, a file name the pattern does not match, an image the
            manifest does not list); ``far`` is all False except for discovered groups.
        """
        g, n = self.config.groups, len(loaded)
        far = np.zeros(n, dtype=bool)
        given = [s.group for s in loaded.samples]  # from a manifest or the caller: wins
        if g.source == "pattern":
            found = [name_key(g.pattern, s.path) or NO_GROUP for s in loaded.samples]
        elif g.source == "discover" and n and not all(given):
            a = self.group_model.assign(self._embed(loaded.images))
            found, far = list(a.groups), np.asarray(a.far, dtype=bool)
        else:
            found = [NO_GROUP] * n
        far = far & ~np.asarray([bool(k) for k in given], dtype=bool)
        return [k or f for k, f in zip(given, found, strict=True)], far

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
                groups, far = self.groups_of(loaded)
                yield BatchResult(
                    loaded,
                    pred,
                    self.thresholds.verdicts(pred.image_scores, groups),
                    groups,
                    self.thresholds.for_groups(groups),
                    far,
                )
            else:
                empty = Prediction(np.zeros(0), np.zeros((0, 0, 0)))
                yield BatchResult(loaded, empty, [], [], np.zeros(0), np.zeros(0, dtype=bool))

    def verdicts(self, scores: np.ndarray, groups: Sequence[str] | None = None) -> list[str]:
        """``"fail"`` where score > the threshold of the image's group, else ``"pass"``."""
        return self.thresholds.verdicts(scores, groups or [NO_GROUP] * len(scores))

    def tune_threshold(self, samples: Sequence[Sample], beta: float = 1.0) -> dict[str, Any]:
        """Set the thresholds that maximise F-beta on labelled validation images (seed 002).

        Scores ``samples`` (good and defective images, e.g. an MVTec-style ``test/`` tree
        read by :func:`flawscope.data.dataset.labelled_samples`) and, globally and for every
        group with its own threshold, picks the threshold with the best F-beta
        (:meth:`GroupThresholds.tune`; a validation set without defective images only raises
        thresholds above its good scores, it never flags them). Use images that the final
        evaluation does not use, or the evaluation is optimistic.

        Returns:
            The record kept in ``inspector.json`` as ``threshold_tuning``: ``beta``,
            ``n_good``, ``n_defective``, ``f_beta``, ``precision``, ``recall`` (at the new
            thresholds, over all validation images), ``threshold`` and ``previous_threshold``
            (global), and ``groups`` (how each threshold was set).

        Raises:
            DataError: no readable image, or an image with an unknown label.
            ConfigError: ``beta <= 0``.
        """
        from sklearn.metrics import fbeta_score, precision_score, recall_score

        if not beta > 0:
            raise ConfigError(f"beta must be > 0, got {beta}", "use 1 for F1 or 2 for F2")
        scores, labels, groups = [], [], []
        for batch in self.predict_batches(samples):
            scores.append(batch.prediction.image_scores)
            labels += [s.label for s in batch.loaded.samples]
            groups += batch.groups
        if not labels:
            raise DataError("none of the validation images could be read", "check the warnings")
        y, sc = np.asarray(labels), np.concatenate(scores)
        if not set(y.tolist()) <= {0, 1}:
            raise DataError(
                "validation images need labels (good or defective)",
                "use an MVTec-style folder with test/good and test/<defect>",
            )
        previous = self.threshold
        self.thresholds, how = self.thresholds.tune(y, sc, groups, beta)
        pred = np.asarray([v == "fail" for v in self.thresholds.verdicts(sc, groups)], dtype=int)
        kw: dict[str, Any] = {"labels": [0, 1], "zero_division": 0}
        self.tuning = {
            "beta": beta,
            "n_good": int((y == 0).sum()),
            "n_defective": int((y == 1).sum()),
            "f_beta": float(fbeta_score(y, pred, beta=beta, **kw)),
            "precision": float(precision_score(y, pred, **kw)),
            "recall": float(recall_score(y, pred, **kw)),
            "threshold": self.threshold,
            "previous_threshold": previous,
            "groups": how,
        }
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
        rule = {
            "max": "max",
            "quantile": f"{th.quantile:g} quantile",
            "sigma": f"mean + {th.z:g} sd",
        }
        text = f"{rule[th.method]} of {len(self.holdout_scores)} hold-out good images"
        if th.sensitivity != 1:
            text += f", sensitivity {th.sensitivity:g}"
        n = len(self.thresholds.thresholds)
        if n:
            text += f"; per group ({n} groups"
            fb = len(self.thresholds.fallback)
            text += f", {fb} on the global threshold)" if fb else ")"
        return text

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
        if self.group_model is not None:
            save_file(self.group_model.to_tensors(), str(d / GROUPS_FILE))
        self.model_id = model_id(d)
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
            "thresholds": self.thresholds.to_dict(),
            "holdout_stats": HoldoutStats.of(self.holdout_scores).to_dict(),
            "holdout_scores": [float(s) for s in self.holdout_scores],
            "holdout_groups": self.holdout_groups,
            "groups": self.group_model.describe() if self.group_model is not None else None,
            "history": self.history,
            "fit_stats": self.fit_stats,
            "threshold_tuning": self.tuning,
        }
        write_state(Path(directory) / STATE_FILE, state)

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
        if state.get("kind") == "pointcloud":
            raise ModelDirError(
                f"{d} holds a 3d-st point-cloud model, not an image model",
                "use it with `flawscope inspect` / `flawscope evaluate` on point clouds",
            )
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
        if (d / GROUPS_FILE).is_file():
            from flawscope.grouping import GroupModel

            try:
                insp.group_model = GroupModel.from_tensors(load_file(str(d / GROUPS_FILE)))
            except (OSError, SafetensorError, KeyError) as exc:
                raise ModelDirError(
                    f"{d / GROUPS_FILE} is damaged ({exc})", "re-run `flawscope fit`"
                ) from exc
        elif insp.config.groups.source == "discover":
            raise ModelDirError(
                f"{d} uses discovered groups but has no {GROUPS_FILE}", "re-run `flawscope fit`"
            )
        insp.holdout_scores = np.asarray(state.get("holdout_scores", []), dtype=np.float32)
        insp.holdout_groups = list(state.get("holdout_groups", []))
        if "thresholds" in state:
            insp.thresholds = GroupThresholds.from_dict(state["thresholds"])
        else:  # written before per-group thresholds
            median = float(np.median(insp.holdout_scores)) if len(insp.holdout_scores) else 0.0
            insp.thresholds = GroupThresholds(float(state["threshold"]), median)
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

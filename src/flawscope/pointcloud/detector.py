"""``PointCloudDetector``: the 3D Student-Teacher (3D-ST) detector, fit / predict / save / load.

Source: Bergmann & Sattlegger, "Anomaly Detection in 3D Point Clouds using Deep Geometric
Descriptors", WACV 2023 (arXiv 2202.11660); seed 004 (its sizes). Learns from good clouds
only; the per-point anomaly score is the student's regression error of the normalised teacher
descriptor (higher = more anomalous), the object score aggregates it
(``scoring.aggregation``), and a cloud fails when its object score is strictly greater than the
threshold (the largest object score of held-out good clouds, as the image Inspector does).

Model directory (``save`` / ``load_dir``)::

    config.yaml           PointCloudConfig (model: 3d-st)
    weights.safetensors   teacher.*, student<i>.*, decoder.*, stats.mean, stats.std (float32)
    inspector.json        kind "pointcloud", format version, model id, threshold, hold-out
                          scores, scale, loss history (teacher and student), fit statistics
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from scipy.spatial import cKDTree

from flawscope import __version__
from flawscope.errors import DataError, FlawscopeError, ModelDirError
from flawscope.models.weights import model_id, write_state
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.config import PointCloudConfig
from flawscope.pointcloud.knn import mean_knn_distance
from flawscope.pointcloud.networks import Decoder, DescriptorNet
from flawscope.pointcloud.organized import remove_background_plane
from flawscope.pointcloud.training import (
    Prepared,
    SceneSteps,
    StudentClouds,
    StudentModule,
    TeacherModule,
    descriptors,
    prepare,
    torch_threads,
    train_module,
)
from flawscope.resources import peak_memory_mb
from flawscope.scoring.aggregate import aggregate

log = logging.getLogger("flawscope")

FORMAT_VERSION = 1
KIND = "pointcloud"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "inspector.json"
#: std floor when normalising teacher descriptors (channels that never vary)
STD_EPS = 1e-6


@dataclass
class CloudResult:
    """The scores of one cloud.

    Attributes:
        cloud: the cloud as scored (after background-plane removal), all its points.
        point_scores: ``(N,)`` float32 >= 0, one per point of ``cloud`` (regression error in
            normalised descriptor units).
        score: object-level anomaly score (``scoring.aggregation`` of the scored points).
        verdict: ``"fail"`` when ``score > threshold``, else ``"pass"``.
    """

    cloud: PointCloud
    point_scores: np.ndarray
    score: float
    verdict: str


class PointCloudDetector:
    """A 3D-ST model: teacher, students, descriptor statistics, scale and threshold.

    Attributes:
        config: the :class:`PointCloudConfig`.
        teacher, students, decoder: the networks (decoder only used in pretraining).
        scale: the data scale ``s`` (mean k-NN distance of the good training clouds, scene
            units); clouds are divided by it.
        mean, std: ``(d,)`` float32 teacher-descriptor statistics over the training points.
        threshold: object score above which a cloud fails.
        holdout_scores: ``(M,)`` object scores of the held-out good clouds.
        point_score_median: median per-point score of the held-out good clouds (the low end
            of the heat-map colour scale).
        history: ``teacher_loss``, ``teacher_val_loss``, ``student_loss``,
            ``student_val_loss`` per epoch (``student<i>_...`` for further students).
        fit_stats: seconds (total, teacher, student), clouds, points, peak memory.
        model_id: 12-hex-digit hash of weights and config (set by :meth:`save`).
    """

    def __init__(self, config: PointCloudConfig | None = None) -> None:
        self.config = config or PointCloudConfig()
        n = self.config.network
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
            torch.manual_seed(self.config.seed)
            self.teacher = DescriptorNet(n.dim, n.blocks)
            self.decoder = Decoder(n.dim, n.decoder_points, n.decoder_hidden)
            self.students = [
                DescriptorNet(n.dim, n.blocks) for _ in range(self.config.student.students)
            ]
        self.scale = float("nan")
        self.teacher_scale = float("nan")
        self.mean = torch.zeros(n.dim)
        self.std = torch.ones(n.dim)
        self.threshold = float("nan")
        self.holdout_scores = np.zeros(0, dtype=np.float32)
        self.holdout_names: list[str] = []
        self.point_score_median = float("nan")
        self.history: dict[str, list[float]] = {}
        self.fit_stats: dict[str, Any] = {}
        self.model_id = ""
        self.created = ""

    # ------------------------------------------------------------------ data
    def preprocess(self, cloud: PointCloud) -> PointCloud:
        """Remove the background plane of organised scans (``data.remove_plane``)."""
        d = self.config.data
        if d.remove_plane and cloud.organized:
            return remove_background_plane(
                cloud, d.plane_distance, d.plane_border, self.config.seed
            )
        return cloud

    def read(self, path: Path | str) -> PointCloud:
        """Read a cloud file and preprocess it (:meth:`preprocess`).

        Raises:
            DataError: unreadable file, or too few points left.
        """
        from flawscope.pointcloud.io import read_cloud

        return self.preprocess(read_cloud(path))

    def scored_subset(self, n: int) -> np.ndarray:
        """Indices of the points that are scored: all, or a fixed random ``data.max_points``."""
        m = self.config.data.max_points
        if n <= m:
            return np.arange(n)
        return np.sort(np.random.default_rng(self.config.seed).choice(n, m, replace=False))

    def _prepared(self, cloud: PointCloud) -> Prepared:
        k = self.config.network.k
        if len(cloud) <= k:
            raise DataError(
                f"{cloud.name} has {len(cloud)} points, 3d-st needs more than k = {k}",
                "pass a denser cloud (after background removal) or fit with a smaller k",
            )
        return prepare(cloud.points[self.scored_subset(len(cloud))], self.scale, k)

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        train: Path | str | Sequence[PointCloud],
        config: PointCloudConfig | None = None,
    ) -> PointCloudDetector:
        """Pretrain (or load) the teacher, train the students on good clouds, set the threshold.

        Args:
            train: a folder of good clouds / an MVTec 3D-AD category (see
                :func:`flawscope.pointcloud.dataset.training_files`), or clouds in memory.
            config: settings (default :class:`PointCloudConfig`).

        Raises:
            DataError: missing folder, fewer than 2 usable clouds.
            ModelDirError: ``teacher.pretrained`` is not a readable 3d-st model directory.
            ConfigError: invalid settings.
        """
        started = time.perf_counter()
        det = cls(config)
        cfg = det.config
        clouds = det._training_clouds(train)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(clouds))
        n_hold = max(1, round(cfg.student.holdout_fraction * len(clouds)))
        hold = [clouds[i] for i in order[:n_hold]]
        fit = [clouds[i] for i in order[n_hold:]]
        log.info("3d-st: %d good clouds for the students, %d held out", len(fit), len(hold))
        with torch_threads(cfg.threads):
            t0 = time.perf_counter()
            if cfg.teacher.pretrained:
                det.load_teacher(Path(cfg.teacher.pretrained))
            else:
                det.pretrain_teacher()
            t1 = time.perf_counter()
            det.fit_students(fit, hold)
            t2 = time.perf_counter()
            det.calibrate(hold)
        det.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        det.fit_stats = {
            "seconds": round(time.perf_counter() - started, 2),
            "teacher_seconds": round(t1 - t0, 2),
            "student_seconds": round(t2 - t1, 2),
            "teacher_pretrained": cfg.teacher.pretrained,
            "train_clouds": len(fit),
            "holdout_clouds": len(hold),
            "mean_points": round(float(np.mean([len(c) for c in clouds])), 1),
            "peak_memory_mb": peak_memory_mb(),
            "threads": torch.get_num_threads() if cfg.threads is None else cfg.threads,
        }
        return det

    def _training_clouds(self, train: Path | str | Sequence[PointCloud]) -> list[PointCloud]:
        if isinstance(train, (str, Path)):
            from flawscope.pointcloud.dataset import training_files

            clouds = []
            for path in training_files(train):
                try:
                    clouds.append(self.read(path))
                except FlawscopeError as exc:
                    log.warning("skipped %s: %s", path, exc)
        else:
            clouds = [self.preprocess(c) for c in train]
        clouds = [c for c in clouds if len(c) > self.config.network.k]
        if len(clouds) < 2:
            raise DataError(
                f"only {len(clouds)} usable good point cloud(s) to learn from",
                "provide at least 2 readable good clouds (more is better: one is held out)",
            )
        return clouds

    def pretrain_teacher(self) -> tuple[list[float], list[float]]:
        """Pretrain teacher and decoder on synthetic scenes (``teacher`` settings).

        Returns:
            Training and validation chamfer losses per epoch (also in ``history``).
        """
        from flawscope.pointcloud.scenes import scene_clouds

        t, n = self.config.teacher, self.config.network
        kw = {"n_points": t.scene_points, "n_objects": t.objects, "modelnet": t.modelnet}
        train = scene_clouds(t.scenes, seed=self.config.seed, **kw)
        val = scene_clouds(t.val_scenes, seed=self.config.seed + 1, **kw)
        self.teacher_scale = float(np.mean([mean_knn_distance(c.points, n.k) for c in train]))
        prep = [prepare(c.points, self.teacher_scale, n.k) for c in train]
        vprep = [prepare(c.points, self.teacher_scale, n.k) for c in val]
        hops = self.teacher.hops
        module = TeacherModule(self.teacher, self.decoder, t.learning_rate, t.weight_decay)
        log.info("3d-st: pretraining the teacher on %d synthetic scenes", t.scenes)
        losses = train_module(
            module,
            SceneSteps(prep, t.samples, hops, t.max_field, self.config.seed, False, t.field_hops),
            SceneSteps(
                vprep, t.samples, hops, t.max_field, self.config.seed + 1, True, t.field_hops
            ),
            t.epochs,
            self.config.seed,
            self.config.progress,
        )
        self.history["teacher_loss"], self.history["teacher_val_loss"] = losses
        return losses

    def load_teacher(self, model_dir: Path) -> None:
        """Reuse the teacher (and decoder, history) of another 3d-st model directory.

        Raises:
            ModelDirError: not a 3d-st model directory, or other network sizes.
        """
        other = PointCloudDetector.load_dir(model_dir)
        if other.config.network != self.config.network:
            raise ModelDirError(
                f"the teacher in {model_dir} has other network sizes than this config",
                "use the same network settings, or pretrain a new teacher",
            )
        self.teacher.load_state_dict(other.teacher.state_dict())
        self.decoder.load_state_dict(other.decoder.state_dict())
        self.teacher_scale = other.teacher_scale
        for key in ("teacher_loss", "teacher_val_loss"):
            self.history[key] = list(other.history.get(key, []))

    def fit_students(self, train: Sequence[PointCloud], holdout: Sequence[PointCloud]) -> None:
        """Set scale and descriptor statistics from ``train``, then train every student."""
        n, s = self.config.network, self.config.student
        sub = [c.points[self.scored_subset(len(c))] for c in train]
        self.scale = float(np.mean([mean_knn_distance(p, n.k) for p in sub]))
        prep = [self._prepared(c) for c in train]
        vprep = [self._prepared(c) for c in holdout]
        feats = [descriptors(self.teacher, p) for p in prep]
        stacked = torch.cat(feats)
        self.mean = stacked.mean(0)
        self.std = stacked.std(0).clamp_min(STD_EPS)
        targets = [(f - self.mean) / self.std for f in feats]
        vtargets = [(descriptors(self.teacher, p) - self.mean) / self.std for p in vprep]
        for i, student in enumerate(self.students):
            log.info(
                "3d-st: training student %d/%d on %d clouds", i + 1, len(self.students), len(prep)
            )
            module = StudentModule(student, s.learning_rate, s.weight_decay)
            losses = train_module(
                module,
                StudentClouds(prep, targets),
                StudentClouds(vprep, vtargets),
                s.epochs,
                self.config.seed + i,
                self.config.progress,
            )
            key = "student" if i == 0 else f"student{i}"
            self.history[f"{key}_loss"], self.history[f"{key}_val_loss"] = losses

    def calibrate(self, holdout: Sequence[PointCloud]) -> float:
        """Threshold = max object score of good ``holdout`` clouds x ``threshold_margin``."""
        results = [self._score(c) for c in holdout]
        self.holdout_scores = np.asarray([r[1] for r in results], dtype=np.float32)
        self.point_score_median = float(np.median(np.concatenate([r[0] for r in results])))
        self.holdout_names = [c.name for c in holdout]
        self.threshold = float(self.holdout_scores.max()) * self.config.scoring.threshold_margin
        return self.threshold

    @property
    def colour_range(self) -> tuple[float, float]:
        """``(low, high)`` of the heat-map colours (see
        :func:`flawscope.pointcloud.heatmap.colour_range`)."""
        from flawscope.pointcloud.heatmap import colour_range

        return colour_range(self.threshold, self.point_score_median)

    @property
    def threshold_method(self) -> str:
        """How the threshold was chosen, in words."""
        margin = self.config.scoring.threshold_margin
        text = f"max of {len(self.holdout_scores)} hold-out good clouds"
        return text + (f" x {margin:g}" if margin != 1 else "")

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _score(self, cloud: PointCloud) -> tuple[np.ndarray, float]:
        """``((N,) per-point scores for every point of cloud, object score)``."""
        if not np.isfinite(self.scale):
            raise ModelDirError("the 3d-st detector is not fitted", "fit it or load a model dir")
        idx = self.scored_subset(len(cloud))
        prep = self._prepared(cloud)
        target = (descriptors(self.teacher, prep) - self.mean) / self.std
        errors = torch.stack([(descriptors(s, prep) - target).norm(dim=1) for s in self.students])
        sub_scores = smooth_scores(prep.points, errors.mean(0).numpy(), self.config.scoring)
        s = self.config.scoring
        score = float(aggregate(sub_scores[None, :], s.aggregation, s.top_k_percent)[0])
        if len(idx) == len(cloud):
            return sub_scores, score
        _, nearest = cKDTree(cloud.points[idx]).query(cloud.points, workers=-1)
        return sub_scores[nearest], score

    def predict_cloud(self, cloud: PointCloud, preprocess: bool = True) -> CloudResult:
        """Score one cloud (read by :meth:`read`, or raw with ``preprocess=True``).

        Raises:
            DataError: too few points.
            ModelDirError: the detector is not fitted.
        """
        if preprocess:
            cloud = self.preprocess(cloud)
        with torch_threads(self.config.threads):
            point_scores, score = self._score(cloud)
        verdict = "fail" if score > self.threshold else "pass"
        return CloudResult(cloud, point_scores, score, verdict)

    def predict(self, clouds: Sequence[PointCloud], preprocess: bool = True) -> list[CloudResult]:
        """:meth:`predict_cloud` for every cloud."""
        return [self.predict_cloud(c, preprocess) for c in clouds]

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """All weights and statistics as a flat dict of contiguous float32 tensors."""
        out: dict[str, torch.Tensor] = {}
        nets = {"teacher": self.teacher, "decoder": self.decoder}
        nets |= {f"student{i}": s for i, s in enumerate(self.students)}
        for prefix, net in nets.items():
            for k, v in net.state_dict().items():
                out[f"{prefix}.{k}"] = v.detach().contiguous()
        out["stats.mean"] = self.mean.contiguous()
        out["stats.std"] = self.std.contiguous()
        return out

    def save(self, directory: Path | str) -> Path:
        """Write the model directory (see module docstring); returns it."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.to_yaml(d / CONFIG_FILE)
        save_file(self.state_tensors(), str(d / WEIGHTS_FILE))
        self.model_id = model_id(d)
        state = {
            "kind": KIND,
            "model": self.config.model,
            "format_version": FORMAT_VERSION,
            "flawscope_version": __version__,
            "model_id": self.model_id,
            "created": self.created,
            "threshold": self.threshold,
            "threshold_method": self.threshold_method,
            "holdout_scores": [float(v) for v in self.holdout_scores],
            "holdout_names": self.holdout_names,
            "point_score_median": self.point_score_median,
            "scale": self.scale,
            "teacher_scale": self.teacher_scale,
            "history": self.history,
            "fit_stats": self.fit_stats,
        }
        write_state(d / STATE_FILE, state)
        return d

    @classmethod
    def load_dir(cls, directory: Path | str) -> PointCloudDetector:
        """Load a model directory written by :meth:`save`; no training data needed.

        Raises:
            ModelDirError: missing, incomplete, damaged, not a 3d-st model, or another format.
        """
        d = Path(directory)
        if not d.is_dir():
            raise ModelDirError(
                f"model directory {d} does not exist", "train one with `flawscope fit`"
            )
        state = read_state(d)
        if state.get("format_version") != FORMAT_VERSION:
            raise ModelDirError(
                f"{d} has 3d-st format version {state.get('format_version')}; this flawscope "
                f"{__version__} reads {FORMAT_VERSION}",
                "re-train it with `flawscope fit --model 3d-st`",
            )
        if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
            raise ModelDirError(
                f"{d} lacks {CONFIG_FILE} or {WEIGHTS_FILE}", "re-run `flawscope fit --model 3d-st`"
            )
        det = cls(PointCloudConfig.from_yaml(d / CONFIG_FILE))
        try:
            tensors = load_file(str(d / WEIGHTS_FILE))
            nets = {"teacher": det.teacher, "decoder": det.decoder}
            nets |= {f"student{i}": s for i, s in enumerate(det.students)}
            for prefix, net in nets.items():
                sub = {
                    k[len(prefix) + 1 :]: v
                    for k, v in tensors.items()
                    if k.startswith(prefix + ".")
                }
                net.load_state_dict(sub)
                net.eval()
            det.mean, det.std = tensors["stats.mean"], tensors["stats.std"]
        except (OSError, SafetensorError, KeyError, RuntimeError) as exc:
            raise ModelDirError(
                f"{d / WEIGHTS_FILE} is damaged or does not match config.yaml ({exc})",
                "re-run `flawscope fit --model 3d-st`",
            ) from exc
        det.threshold = float(state.get("threshold", float("nan")))
        det.holdout_scores = np.asarray(state.get("holdout_scores", []), dtype=np.float32)
        det.holdout_names = list(state.get("holdout_names", []))
        det.point_score_median = float(state.get("point_score_median", float("nan")))
        det.scale = float(state.get("scale", float("nan")))
        det.teacher_scale = float(state.get("teacher_scale", float("nan")))
        det.history = state.get("history", {})
        det.fit_stats = state.get("fit_stats", {})
        det.model_id = state.get("model_id", "")
        det.created = state.get("created", "")
        return det


def smooth_scores(points: np.ndarray, scores: np.ndarray, scoring: Any) -> np.ndarray:
    """Mean of each point's score over itself and its ``scoring.smooth_neighbours`` nearest
    points (``(N, 3)`` points, ``(N,)`` scores -> ``(N,)`` float32); unchanged when 0."""
    k = min(scoring.smooth_neighbours, len(points) - 1)
    if k < 1:
        return np.asarray(scores, dtype=np.float32)
    _, nearest = cKDTree(points).query(points, k=k + 1, workers=-1)
    return np.asarray(scores, dtype=np.float64)[nearest].mean(1).astype(np.float32)


def read_state(directory: Path) -> dict[str, Any]:
    """The ``inspector.json`` of a point-cloud model directory.

    Raises:
        ModelDirError: missing, damaged, or not a point-cloud model.
    """
    path = Path(directory) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelDirError(
            f"{directory} is not a flawscope model directory (no {STATE_FILE})",
            "pass the folder written by `flawscope fit --out`",
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path} is damaged ({exc})", "re-run `flawscope fit`") from exc
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise ModelDirError(
            f"{directory} holds an image model, not a 3d-st point-cloud model",
            "pass a folder written by `flawscope fit --model 3d-st`",
        )
    return state


def is_model_dir(directory: Path | str) -> bool:
    """True when ``directory`` holds a point-cloud (3d-st) model (never raises)."""
    try:
        read_state(Path(directory))
    except ModelDirError:
        return False
    return True

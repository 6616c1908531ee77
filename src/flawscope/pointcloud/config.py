"""Typed settings of the 3D-ST point-cloud detector; round-trips to YAML (``config.yaml``).

Defaults and why (measured on a 2-core Xeon, one torch thread, other jobs sharing the CPU;
``benchmarks/results/pointcloud_3dst.json``): a default fit on 40 good clouds of 16,000 points
takes about 10 minutes, the teacher pretraining 251 s and the students 320 s (scans of ~6,800
points: students 122 s with the teacher reused).

* network: seed 004's sizes (k = 8, d = 64, 4 residual blocks, decoder m = 128 points); the
  paper's k = 32 makes every neighbourhood layer 4 times as large.
* teacher: 100 synthetic scenes of 16,000 points (seed 004's cloud size; paper 64,000) with 10
  objects each, 16 receptive fields per step (seed 004 and paper), 30 epochs instead of the
  seed's 250 over 500 scenes: in a 40-epoch run the validation chamfer distance fell from 1.14
  to 0.76 by epoch 20 and only to 0.74 by epoch 40.
* student: one student, 30 epochs, learning rate 3e-3 (after 15 epochs on 17 brick clouds its
  loss was 10.5 against 22 with 1e-3, point AUROC 0.80 against 0.76); max 16,000 points per
  cloud.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flawscope.config import build
from flawscope.errors import ConfigError

MODEL_NAME = "3d-st"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NetworkConfig(_Strict):
    """Teacher / student / decoder sizes (Bergmann & Sattlegger, WACV 2023, Sec. 3).

    ``k``: neighbours of the k-NN graph; ``dim``: descriptor size (multiple of 4); ``blocks``:
    residual blocks (receptive field ``2 * blocks`` k-NN hops); ``decoder_points``: points m
    the decoder reconstructs per receptive field; ``decoder_hidden``: its hidden width.
    """

    k: int = Field(8, ge=1, le=128)
    dim: int = Field(64, ge=4, le=1024)
    blocks: int = Field(4, ge=1, le=16)
    decoder_points: int = Field(128, ge=1, le=4096)
    decoder_hidden: int = Field(128, ge=1)

    @field_validator("dim")
    @classmethod
    def _multiple_of_four(cls, v: int) -> int:
        if v % 4:
            raise ValueError("dim must be a multiple of 4")
        return v


class TeacherConfig(_Strict):
    """Teacher pretraining on synthetic scenes (no real data needed).

    ``pretrained``: a 3d-st model directory whose teacher is reused (no pretraining; the
    paper pretrains one teacher for all categories). ``modelnet``: a ModelNet10 folder whose
    ``train`` meshes fill the scenes; None = built-in parametric shapes. ``scenes`` /
    ``val_scenes``: training / validation scenes of ``scene_points`` points with ``objects``
    meshes each. ``samples``: receptive fields decoded per step (>= 2: the decoder's BatchNorm).
    ``field_hops``: the decoded field is the points within this many k-NN hops of the centre
    (at most the network's ``2 * blocks``). 2 (about 24 points at k = 8) rather than the
    full 8-hop receptive field (about 320 points): in 300-step trials the full field's chamfer
    distance stayed near that of a constant blob while 2 and 4 hops kept falling.
    ``max_field``: field points kept as chamfer target (random subset beyond that).
    """

    pretrained: str | None = None
    modelnet: str | None = None
    scenes: int = Field(100, ge=1)
    val_scenes: int = Field(8, ge=1)
    scene_points: int = Field(16000, ge=64)
    objects: int = Field(10, ge=1)
    epochs: int = Field(30, ge=1)
    samples: int = Field(16, ge=2)
    field_hops: int = Field(2, ge=1)
    max_field: int = Field(1024, ge=8)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-6, ge=0)


class StudentConfig(_Strict):
    """Students trained on defect-free clouds.

    ``students``: ensemble size (the anomaly score is the mean regression error).
    ``holdout_fraction``: share of the good training clouds (at least 1) held out to pick the
    best epoch and set the threshold.
    """

    epochs: int = Field(30, ge=1)
    students: int = Field(1, ge=1, le=16)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    holdout_fraction: float = Field(0.15, gt=0, lt=1)


class DataConfig(_Strict):
    """Input preparation, identical at fit and inspect.

    ``max_points``: clouds with more points are scored on a fixed random subset of this size
    (per-point scores of the others: their nearest scored point). ``remove_plane``: drop the
    background plane of organised scans (:mod:`flawscope.pointcloud.organized`);
    ``plane_distance`` (scene units; None = 3 pixel spacings) and ``plane_border`` (px).
    """

    max_points: int = Field(16000, ge=64)
    remove_plane: bool = True
    plane_distance: float | None = Field(None, gt=0)
    plane_border: int = Field(10, ge=1)


class ScoringConfig(_Strict):
    """Per-point scores, object score and threshold.

    ``smooth_neighbours``: each point's score becomes the mean regression error over itself
    and its ``smooth_neighbours`` nearest scored points (0 = off): the point-cloud counterpart
    of smoothing image anomaly maps. Isolated high errors (sampling noise, mixed pixels at
    scan edges) fade, defects (regions) stay. On a pilot set of synthetic bricks it raised the
    object AUROC from 0.78 to 0.93 (whole parts) and 0.92 to 0.99 (scans) and the point AUROC
    from 0.80 to 0.86 / 0.90 to 0.94 (32 vs 0 neighbours).
    ``aggregation``: ``max``, ``mean`` or ``topk`` (mean of the highest ``top_k_percent``
    percent of the points). The threshold is the maximum object score of the held-out good
    clouds, times ``threshold_margin``.
    """

    smooth_neighbours: int = Field(32, ge=0, le=1024)
    aggregation: Literal["max", "mean", "topk"] = "topk"
    top_k_percent: float = Field(1.0, gt=0, le=100)
    threshold_margin: float = Field(1.0, gt=0)


class PointCloudConfig(_Strict):
    """All settings of a 3d-st model.

    ``threads``: torch CPU threads while fitting and scoring (None = torch's default). On a
    shared 2-core machine one thread was ~6x faster than two (OpenMP threads waiting for a
    busy core), hence the option.
    """

    model: Literal["3d-st"] = MODEL_NAME
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    seed: int = 42
    threads: int | None = Field(None, ge=1)
    progress: bool = False

    def to_yaml(self, path: Path) -> None:
        """Write the config as YAML to ``path``."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: Path) -> PointCloudConfig:
        """Read a YAML config.

        Raises:
            ConfigError: not valid YAML, unknown keys or invalid values.
        """
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"config {path} is not readable YAML ({exc})", "fix the file"
            ) from exc
        return build(cls, data, str(path))

    def with_overrides(self, overrides: dict[str, Any] | None) -> PointCloudConfig:
        """A copy with ``overrides`` applied (``None`` values ignored).

        Keys may be dotted (``"teacher.epochs"``), nested dicts (``{"teacher": {...}}``) or
        plain field names: a plain name found in one section sets it there; ``epochs``,
        found in ``teacher`` and ``student``, sets both.

        Raises:
            ConfigError: an unknown key or an invalid value (one line, naming the key).
        """
        data = self.model_dump()
        sections = {name for name, v in data.items() if isinstance(v, dict)}
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if key in sections and isinstance(value, dict):
                for sub, v in value.items():
                    _set(data, f"{key}.{sub}", v)
            elif "." in key or key in data:
                _set(data, key, value)
            else:
                homes = [s for s in sections if key in data[s]]
                if not homes:
                    known = sorted({k for s in sections for k in data[s]} | set(data) - sections)
                    raise ConfigError(
                        f"unknown 3d-st option {key!r}", f"use one of: {', '.join(known)}"
                    )
                for s in homes:
                    data[s][key] = value
        return build(PointCloudConfig, data, "3d-st option")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    if section not in data or (key and not isinstance(data[section], dict)):
        raise ConfigError(f"unknown 3d-st option {dotted!r}", "see PointCloudConfig for names")
    if key:
        if key not in data[section]:
            raise ConfigError(
                f"unknown 3d-st option {dotted!r}",
                f"use one of: {', '.join(f'{section}.{k}' for k in data[section])}",
            )
        data[section][key] = value
    else:
        data[section] = value

"""Typed configuration of an inspector; round-trips to YAML.

A saved model directory holds this config as ``config.yaml``; the same settings are used at fit
and at inspect time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flawscope.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """Which detector, and its input format.

    ``image_size`` is the side S in pixels of the square ``(C, S, S)`` input; ``channels`` 1 (grey)
    or 3 (RGB), or ``"auto"``: fitting picks 3 when the training images have colour, else 1 (the
    saved config records the choice); images whose shorter side is below ``min_image_side``
    pixels are refused;
    ``keep_aspect`` letterboxes images (long side to S, mirrored padding) instead of squashing;
    ``exposure`` = ``"gain"`` scales every image to the same mean intensity before anything else
    (for acquisitions at different exposure or gain; see
    :func:`flawscope.preprocess.enhance.normalize_exposure`);
    ``params`` are the detector's own hyperparameters (validated by the detector).
    """

    name: str = "patchcore"
    image_size: int = Field(256, ge=16, le=4096)
    channels: Literal["auto", 1, 3] = "auto"
    min_image_side: int = Field(16, ge=1)
    keep_aspect: bool = False
    exposure: Literal["none", "gain"] = "none"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    """Training loop settings (Lightning): epochs, batch, optimiser, early stopping, hold-out.

    ``augment`` turns on label-preserving augmentation of the training images of the trainable
    detectors (:mod:`flawscope.preprocess.augment`): rotation up to ``aug_rotate`` degrees, shift
    up to ``aug_translate`` of the side, brightness / contrast changes up to ``aug_brightness``
    / ``aug_contrast``, and flips with ``aug_flip``. The hold-out is never augmented.
    """

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(8, ge=1, description="early-stopping patience in epochs")
    lr_patience: int = Field(3, ge=1, description="ReduceLROnPlateau patience in epochs")
    lr_factor: float = Field(0.5, gt=0, lt=1)
    holdout_fraction: float = Field(0.15, gt=0, lt=1)
    seed: int = 42
    accelerator: str = "auto"
    devices: int | str = "auto"
    progress: bool = True
    augment: bool = Field(False, description="augment training images (thesis 3.5.1, 5.5)")
    aug_rotate: float = Field(5.0, ge=0, le=180, description="max rotation, degrees")
    aug_translate: float = Field(0.05, ge=0, lt=1, description="max shift, fraction of the side")
    aug_brightness: float = Field(0.1, ge=0, le=1)
    aug_contrast: float = Field(0.1, ge=0, le=1)
    aug_flip: bool = False


class ScoringConfig(_Strict):
    """Anomaly maps and image scores.

    ``residual``: the map of reconstruction detectors, ``"l2"`` (squared error) or ``"ssim"``
    (1 - local SSIM; see :mod:`flawscope.scoring.maps`); feature detectors ignore it.
    ``sigma``: Gaussian smoothing of the map in pixels at the model input size. ``aggregation``
    and ``top_k_percent``: how a reconstruction detector's map becomes the image score.
    """

    residual: Literal["l2", "ssim"] = "l2"
    aggregation: Literal["max", "mean", "topk"] = "topk"
    top_k_percent: float = Field(1.0, gt=0, le=100)
    sigma: float = Field(4.0, ge=0)


class ThresholdConfig(_Strict):
    """Threshold from good hold-out scores (no defect labels needed).

    ``method``: ``"max"`` of the hold-out scores (every good hold-out image passes; thesis Sec.
    3.9), their ``quantile``, or ``"sigma"`` = mean + ``z`` x standard deviation.
    ``sensitivity`` (> 0) moves the threshold towards (> 1, more images fail) or away from (< 1)
    the median good score: ``median + (rule - median) / sensitivity``; 1 keeps the rule.
    ``normalize``: report scores rescaled so that 0 is the median good score and 1.0 the
    threshold of the image's group. See :mod:`flawscope.scoring.group_thresholds`.
    """

    method: Literal["max", "quantile", "sigma"] = "max"
    quantile: float = Field(0.99, gt=0, le=1)
    z: float = Field(3.0, ge=0, description="standard deviations above the mean for 'sigma'")
    sensitivity: float = Field(1.0, gt=0)
    normalize: bool = False


class GroupConfig(_Strict):
    """Groups of images that share a threshold: camera views, families of similar layers.

    ``source``: ``"none"`` (one global threshold), ``"manifest"`` (the ``group`` column of a
    manifest CSV ``path,group,batch,label`` given at fit and inspect), ``"pattern"`` (the first
    group, or the whole match, of the regular expression ``pattern`` searched in the file name,
    e.g. ``"^(exp\\d+)_"``) or ``"discover"`` (k-means on pretrained-backbone embeddings of the
    good training images, ``k`` groups or chosen by silhouette up to ``k_max``; a new image goes
    to the nearest group and is flagged when its distance exceeds ``far_factor`` times the
    group's radius; :mod:`flawscope.grouping`). A group with fewer than ``min_images`` good
    hold-out images uses the global threshold (with a warning).
    """

    source: Literal["none", "manifest", "pattern", "discover"] = "none"
    pattern: str | None = None
    k: int | None = Field(None, ge=1)
    k_max: int = Field(8, ge=2)
    far_factor: float = Field(2.0, gt=0)
    min_images: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _pattern(self) -> GroupConfig:
        if self.source == "pattern":
            if not self.pattern:
                raise ValueError("groups from a pattern need pattern = a regular expression")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"group pattern is not a regular expression ({exc})") from exc
        return self


class PreprocessConfig(_Strict):
    """The thesis' preprocessing (seed 003, ch. 3.4-3.8), run identically at fit and inspect.

    ``segment``: background segmentation, ``"none"``, a classical method (``"otsu"``,
    ``"kmeans"``, ``"watershed"``; no training) or ``"unet"`` (the U-Net in the folder
    ``segmenter``, written by ``flawscope segment fit``); ``foreground``: whether the part is
    brighter or darker than the background (classical methods). Pixels outside the mask never
    raise the anomaly score; ``background`` is what the detector sees there: ``"mean"`` (the
    part's mean intensity, default) or ``"black"`` (the thesis; it made the autoencoders
    collapse to an all-zero reconstruction in our ablation).
    ``clahe``: contrast-limited adaptive histogram equalisation inside the mask (clip limit
    ``clahe_clip``, ``clahe_grid`` x ``clahe_grid`` tiles; thesis: 9 and 9x9).
    ``mean_mask``: the thesis' "mean mask per view" (Sec. 5.1.1): each camera view gets the
    average foreground mask of its training images, used instead of segmenting every image;
    the view of an image is the first group (or the whole match) of the regular expression
    ``view_pattern`` searched in its file name (e.g. ``"_(view\\d+)"``).
    ``tile``: overlap-tile for high-resolution images (None = off): every image is resized to
    ``tile_target`` = (H, W) pixels, multiples of ``tile`` (thesis: 1024 x 1536), cut into
    ``tile`` x ``tile`` tiles with ``tile_context`` px of mirrored context on every side (the
    detector's ``model.image_size`` must be ``tile + 2 * tile_context``; thesis 256 + 2 x 32 =
    320), and the tile centres' maps are stitched (:mod:`flawscope.models.tiled`).
    """

    segment: Literal["none", "otsu", "kmeans", "watershed", "unet"] = "none"
    foreground: Literal["bright", "dark"] = "bright"
    segmenter: str | None = None
    background: Literal["mean", "black"] = "mean"
    clahe: bool = False
    clahe_clip: float = Field(9.0, gt=0)
    clahe_grid: int = Field(9, ge=1)
    view_pattern: str | None = None
    mean_mask: bool = False
    tile: int | None = Field(None, ge=8)
    tile_context: int = Field(32, ge=0)
    tile_target: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessConfig:
        if self.segment == "unet" and not self.segmenter:
            raise ValueError(
                "segment 'unet' needs segmenter = the folder written by `flawscope segment fit`"
            )
        if self.mean_mask and (self.segment == "none" or not self.view_pattern):
            raise ValueError("mean_mask needs a segment method and a view_pattern")
        if self.view_pattern is not None:
            try:
                re.compile(self.view_pattern)
            except re.error as exc:
                raise ValueError(f"view_pattern is not a regular expression ({exc})") from exc
        if self.tile is not None:
            if self.tile_context >= self.tile:
                raise ValueError(f"tile_context must be below the tile side {self.tile}")
            t = self.tile_target
            if t is None or t[0] % self.tile or t[1] % self.tile or min(t) < self.tile:
                raise ValueError(
                    f"tiling needs tile_target = (height, width), multiples of the tile side "
                    f"{self.tile}, e.g. ({4 * self.tile}, {6 * self.tile})"
                )
        return self


class InspectorConfig(_Strict):
    """The whole pipeline's settings."""

    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    groups: GroupConfig = Field(default_factory=GroupConfig)

    @model_validator(mode="after")
    def _tile_fits_the_model(self) -> InspectorConfig:
        p, m = self.preprocess, self.model
        if p.tile is not None:
            need = p.tile + 2 * p.tile_context
            if m.image_size != need:
                raise ValueError(
                    f"with tiles of {p.tile} px and {p.tile_context} px context the model input "
                    f"must be {need} px, not image_size {m.image_size}"
                )
            if m.keep_aspect:
                raise ValueError("tiling resizes to tile_target; turn keep_aspect off")
        return self

    def to_yaml(self, path: Path) -> None:
        """Write the config as YAML to ``path``."""
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: Path) -> InspectorConfig:
        """Read a YAML config.

        Raises:
            ConfigError: the file is not valid YAML or holds unknown keys / invalid values.
        """
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML ({exc})", "fix the file") from exc
        return build(cls, data, str(path))


def build(cls: type[_Strict], data: dict[str, Any], where: str = "options") -> Any:
    """Validate ``data`` into ``cls``; turn pydantic errors into one :class:`ConfigError` line."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "value"
        raise ConfigError(
            f"invalid {where}: {loc}: {first['msg']} (got {first.get('input')!r})",
            "fix that value; see `flawscope fit --help` for the allowed values",
        ) from exc

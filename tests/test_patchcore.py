"""PatchCore (models/patchcore.py) and the shared backbone features (models/features.py).

A tiny random two-conv stand-in (strides 8 and 16) replaces the pretrained backbone, so these
tests are fast and need no weights. ``TinyExtractor``, ``tiny_factory`` and ``stripes`` are
shared with tests/test_padim.py.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig, build
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.coreset import nearest_neighbours
from flawscope.models.features import (
    BackboneParams,
    align_stages,
    channel_pool,
    local_average,
    locally_aware_features,
    make_extractor,
    to_patches,
)
from flawscope.models.patchcore import PatchCoreDetector, PatchCoreParams, reweighting_weight
from flawscope.models.weights import WEIGHTS_FILE

SIZE = 64
SQUARE = (24, 24, 16)  # top, left, side in pixels: grid cells 3 and 4 of the 8 x 8 grid


class TinyExtractor(nn.Module):
    """Stand-in with the FeatureExtractor interface: stages at stride 8 (8 ch) and 16 (16 ch)."""

    strides = [8, 16]
    channels = [8, 16]

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 2, stride=2), nn.ReLU())

    def forward(self, images: Tensor) -> list[Tensor]:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        f1 = self.stage1(x)
        return [f1, self.stage2(f1)]


def tiny_factory(params: BackboneParams) -> nn.Module:
    return TinyExtractor()


def stripes(phases: list[int], square: bool = False, size: int = SIZE) -> Tensor:
    """Noise-free horizontal stripes (period 8 px) shifted by ``phases``; optional bright square.

    Returns ``(len(phases), 1, size, size)`` float32 in [0, 1].
    """
    rows = torch.arange(size, dtype=torch.float32)
    out = torch.stack(
        [
            (0.4 + 0.3 * torch.sin(2 * math.pi * (rows + p) / 8))[:, None].expand(size, size)
            for p in phases
        ]
    )[:, None].clone()
    if square:
        top, left, side = SQUARE
        out[:, :, top : top + side, left : left + side] = 1.0
    return out


def detector(size: int = SIZE, **params: object) -> PatchCoreDetector:
    p = {"feature_dim": 16, "projection_dim": 8, "coreset_ratio": 0.5, **params}
    return PatchCoreDetector(
        ModelConfig(name="patchcore", image_size=size, channels=1, params=p),
        TrainingConfig(batch_size=4, seed=0, accelerator="cpu"),
        ScoringConfig(sigma=4.0),
        extractor_factory=tiny_factory,
    )


@pytest.fixture(scope="module")
def fitted() -> PatchCoreDetector:
    return detector().fit(stripes(list(range(8))))


# ---------------------------------------------------------------------- features
def test_locally_aware_feature_shapes() -> None:
    stages = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    assert [tuple(s.shape) for s in align_stages(stages)] == [(2, 8, 8, 8), (2, 16, 8, 8)]
    feats = locally_aware_features(stages, 12)
    assert feats.shape == (2, 12, 8, 8) and feats.dtype == torch.float32
    assert to_patches(feats).shape == (2 * 64, 12)


def test_local_average_and_channel_pool() -> None:
    const = torch.full((1, 2, 5, 5), 3.0)
    torch.testing.assert_close(local_average(const), const)  # borders average inside only
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 9.0
    # 3x3 mean over the positions inside the map: 4 at the corners, 6 at the edges, 9 inside
    want = torch.tensor([[9 / 4, 9 / 6, 9 / 4], [9 / 6, 1.0, 9 / 6], [9 / 4, 9 / 6, 9 / 4]])
    torch.testing.assert_close(local_average(x)[0, 0], want)
    pooled = channel_pool(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 2)
    torch.testing.assert_close(pooled, torch.tensor([[1.5, 3.5]]))


def test_to_patches_order() -> None:
    feats = torch.randn(2, 3, 4, 5)
    patches = to_patches(feats)
    n, i, j = 1, 2, 3
    torch.testing.assert_close(patches[n * 20 + i * 5 + j], feats[n, :, i, j])


def test_make_extractor_without_backbone_module_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "flawscope.models.backbone", None)
    with pytest.raises(ConfigError, match="backbone"):
        make_extractor(BackboneParams())


# ---------------------------------------------------------------------- reweighting (Eq. 7)
def test_reweighting_weight_hand_worked() -> None:
    # w = 1 - e^1 / (e^1 + e^2 + e^3) = 1 - 1 / (1 + e + e^2)
    w = reweighting_weight(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert float(w) == pytest.approx(1 - 1 / (1 + math.e + math.e**2), rel=1e-12)
    # the softmax form does not overflow where exp(1000) would
    w = reweighting_weight(torch.tensor([1000.0, 1001.0]))
    assert float(w) == pytest.approx(1 - 1 / (1 + math.e), rel=1e-6)


@pytest.mark.parametrize("b", [1, 2, 3])
def test_image_score_reweighting_on_a_hand_made_bank(b: int) -> None:
    # bank (0,0) (1,0) (3,0) (10,0); the worst test patch (0,-2): s* = 2, m* = (0,0) whose
    # nearest bank patches are itself, (1,0), (3,0) at distances 2, sqrt 5, sqrt 13 from it
    det = detector(feature_dim=2, num_neighbors=b)
    det.memory_bank = torch.tensor([[0.0, 0], [1, 0], [3, 0], [10, 0]])
    patches = torch.tensor([[[0.0, -2.0], [10.0, 0.5]]])  # (B=1, P=2, D=2)
    dist, nn_index = nearest_neighbours(patches[0], det.memory_bank)
    score = det.image_scores(patches, dist.T, nn_index.T)
    d = [2.0, math.sqrt(5), math.sqrt(13)][:b]
    weight = 1 - math.exp(d[0]) / sum(math.exp(v) for v in d) if b > 1 else 1.0
    assert float(score[0]) == pytest.approx(weight * 2.0, rel=1e-5)


# ---------------------------------------------------------------------- end to end
def test_fit_records_stats(fitted: PatchCoreDetector) -> None:
    stats = fitted.fit_stats
    assert stats["patches"] == 8 * 8 * 8  # 8 images, 8 x 8 grid
    assert stats["bank_size"] == 256 and stats["seconds"] >= 0
    assert fitted.memory_bank is not None and fitted.memory_bank.shape == (256, 16)


def test_defect_scores_higher_and_map_peaks_inside_it(fitted: PatchCoreDetector) -> None:
    good = fitted.predict(stripes([3, 5]))
    bad = fitted.predict(stripes([3, 5], square=True))
    assert good.image_scores.shape == (2,) and good.image_scores.dtype == np.float32
    assert bad.anomaly_maps.shape == (2, SIZE, SIZE) and bad.anomaly_maps.dtype == np.float32
    assert good.reconstructions is None
    assert bad.image_scores.min() > 2 * good.image_scores.max()
    top, left, side = SQUARE
    for m in bad.anomaly_maps:
        r, c = np.unravel_index(np.argmax(m), m.shape)
        assert top <= r < top + side and left <= c < left + side


def test_predict_is_independent_of_batching(fitted: PatchCoreDetector) -> None:
    images = torch.cat([stripes([1, 2]), stripes([4], square=True)])
    together = fitted.predict(images)
    alone = [fitted.predict(images[i : i + 1]) for i in range(3)]
    np.testing.assert_allclose(
        together.image_scores, np.concatenate([a.image_scores for a in alone]), rtol=1e-5, atol=1e-6
    )


def test_rgb_input_works(fitted: PatchCoreDetector) -> None:
    rgb = stripes([0], square=True).expand(-1, 3, -1, -1)
    assert fitted.predict(rgb).image_scores.shape == (1,)


def test_save_load_gives_identical_scores(fitted: PatchCoreDetector, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file()
    loaded = detector().load(tmp_path)
    images = torch.cat([stripes([2]), stripes([6], square=True)])
    a, b = fitted.predict(images), loaded.predict(images)
    np.testing.assert_array_equal(a.image_scores, b.image_scores)
    np.testing.assert_array_equal(a.anomaly_maps, b.anomaly_maps)


def test_small_chunks_give_the_same_scores(fitted: PatchCoreDetector) -> None:
    chunked = detector(query_chunk=7, bank_chunk=5)
    chunked.memory_bank = fitted.memory_bank
    images = torch.cat([stripes([2]), stripes([6], square=True)])
    a, b = fitted.predict(images), chunked.predict(images)
    np.testing.assert_allclose(a.image_scores, b.image_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.anomaly_maps, b.anomaly_maps, rtol=1e-5, atol=1e-6)


def test_max_bank_size_caps_the_coreset() -> None:
    det = detector(max_bank_size=10).fit(stripes([0, 1]))
    assert det.fit_stats["bank_size"] == 10 and det.fit_stats["patches"] == 128


def test_presampling_keeps_fit_memory_to_a_share_of_the_patches() -> None:
    images = stripes(list(range(8)))
    det = detector(coreset_ratio=0.05, presample_ratio=0.25).fit(images)
    stats = det.fit_stats
    assert stats["patches"] == 512  # 8 images x 8 x 8 grid, in 2 batches of 4 images
    assert stats["candidates"] == 2 * 64  # a quarter of each batch's 256 patches
    assert stats["bank_size"] == 26  # ceil(0.05 * 512) of all patches, not of the candidates
    # every bank row is a real training patch
    full = detector(coreset_ratio=1.0).fit(images).memory_bank
    assert torch.cdist(det.memory_bank, full).min(dim=1).values.max() < 1e-5


def test_coreset_is_reproducible_for_a_seed() -> None:
    a = detector().fit(stripes([0, 1, 2]))
    b = detector().fit(stripes([0, 1, 2]))
    assert torch.equal(a.memory_bank, b.memory_bank)


# ---------------------------------------------------------------------- errors
def test_empty_training_set_is_a_data_error() -> None:
    with pytest.raises(DataError):
        detector().fit(torch.zeros(0, 1, SIZE, SIZE))


def test_wrong_image_size_is_a_data_error(fitted: PatchCoreDetector) -> None:
    with pytest.raises(DataError, match="shape"):
        fitted.predict(torch.zeros(1, 1, 32, 32))


def test_missing_or_mismatched_weights_are_model_dir_errors(
    fitted: PatchCoreDetector, tmp_path: Path
) -> None:
    with pytest.raises(ModelDirError, match="missing"):
        detector().load(tmp_path)
    fitted.save(tmp_path)
    with pytest.raises(ModelDirError, match="memory_bank"):
        detector(feature_dim=8).load(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelDirError):
        detector().load(tmp_path)


@pytest.mark.parametrize(
    "bad",
    [
        {"coreset_ratio": 0},
        {"coreset_ratio": 1.5},
        {"feature_dim": 0},
        {"num_neighbors": 0},
        {"unknown": 1},
        {"layers": []},
    ],
)
def test_bad_params_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build(PatchCoreParams, bad, "patchcore model params")
    with pytest.raises(ConfigError):
        detector(**bad)


def test_predict_before_fit_is_refused() -> None:
    with pytest.raises(RuntimeError, match="fit or load"):
        detector().predict(stripes([0]))

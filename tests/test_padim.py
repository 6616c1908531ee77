"""PaDiM (models/padim.py), with the tiny stand-in extractor of tests/test_patchcore.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig, build
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.padim import GaussianAccumulator, PadimDetector, PadimParams, mahalanobis
from tests.test_patchcore import SIZE, SQUARE, stripes, tiny_factory

EPS = 0.01


def detector(size: int = SIZE, seed: int = 0, **params: object) -> PadimDetector:
    return PadimDetector(
        ModelConfig(name="padim", image_size=size, channels=1, params={"n_features": 10, **params}),
        TrainingConfig(batch_size=4, seed=seed, accelerator="cpu"),
        ScoringConfig(sigma=4.0),
        extractor_factory=tiny_factory,
    )


@pytest.fixture(scope="module")
def fitted() -> PadimDetector:
    return detector().fit(stripes(list(range(8))))


# ---------------------------------------------------------------------- Gaussians
def test_mahalanobis_hand_worked_2d() -> None:
    # mean (1, 2), covariance diag(4, 1): (3, 2) is 1 sd away, (1, 4) 2 sd, (3, 4) sqrt(5)
    mean = torch.tensor([[1.0, 2.0]])
    inv_cov = torch.linalg.inv(torch.diag(torch.tensor([4.0, 1.0])))[None]
    x = torch.tensor([[[3.0, 2.0]], [[1.0, 4.0]], [[3.0, 4.0]], [[1.0, 2.0]]])  # (B=4, P=1, 2)
    d = mahalanobis(x, mean, inv_cov)
    torch.testing.assert_close(d[:, 0], torch.tensor([1.0, 2.0, math.sqrt(5), 0.0]))
    # correlated: covariance [[2, 1], [1, 2]], offset (1, 1): (1,1) Sigma^-1 (1,1)^T = 2/3
    inv_cov = torch.linalg.inv(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))[None]
    d = mahalanobis(torch.tensor([[[2.0, 3.0]]]), mean, inv_cov)
    assert float(d) == pytest.approx(math.sqrt(2 / 3), rel=1e-6)


def test_accumulator_matches_sample_covariance_in_any_batching() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(11, 3, 4, generator=g) * 2 + 5  # 11 images, 3 positions, 4 features
    acc = GaussianAccumulator()
    for chunk in (x[:4], x[4:5], x[5:]):
        acc.update(chunk)
    mean, inv_cov = acc.finalize(EPS, chunk=2)
    assert mean.shape == (3, 4) and inv_cov.shape == (3, 4, 4) and inv_cov.dtype == torch.float32
    for p in range(3):
        xp = x[:, p].double().numpy()
        want_cov = np.cov(xp, rowvar=False) + EPS * np.eye(4)  # Eq. 1: 1/(N-1), + eps I
        np.testing.assert_allclose(mean[p].numpy(), xp.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(inv_cov[p].numpy(), np.linalg.inv(want_cov), rtol=1e-4)


def test_accumulator_hand_worked_square() -> None:
    # corners of a 2 x 2 square: mean (1, 1), variances 4/3, no correlation
    x = torch.tensor([[0.0, 0], [2, 0], [0, 2], [2, 2]])[:, None]  # (4, P=1, 2)
    acc = GaussianAccumulator()
    acc.update(x)
    mean, inv_cov = acc.finalize(EPS)
    torch.testing.assert_close(mean[0], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(inv_cov[0], torch.eye(2) / (4 / 3 + EPS))


# ---------------------------------------------------------------------- detector
def test_channel_choice_is_random_but_seeded() -> None:
    a, b, c = detector(), detector(), detector(seed=1)
    index = a.channel_index.tolist()
    assert len(index) == 10 and len(set(index)) == 10 and index == sorted(index)
    assert max(index) < 24  # 8 + 16 stand-in channels
    assert torch.equal(a.channel_index, b.channel_index)
    assert not torch.equal(a.channel_index, c.channel_index)
    assert detector(n_features=None).channel_index.tolist() == list(range(24))


def test_fit_records_stats(fitted: PadimDetector) -> None:
    assert fitted.fit_stats["positions"] == 64 and fitted.fit_stats["features"] == 10
    assert fitted.mean.shape == (64, 10) and fitted.inv_cov.shape == (64, 10, 10)


def test_defect_scores_higher_and_map_peaks_inside_it(fitted: PadimDetector) -> None:
    good = fitted.predict(stripes([3, 5]))
    bad = fitted.predict(stripes([3, 5], square=True))
    assert good.image_scores.dtype == np.float32 and bad.anomaly_maps.shape == (2, SIZE, SIZE)
    assert bad.image_scores.min() > 2 * good.image_scores.max()
    top, left, side = SQUARE
    for m, s in zip(bad.anomaly_maps, bad.image_scores, strict=True):
        assert s == m.max()  # image score = max of the smoothed map
        r, c = np.unravel_index(np.argmax(m), m.shape)
        assert top <= r < top + side and left <= c < left + side


def test_save_load_gives_identical_scores(fitted: PadimDetector, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    loaded = detector()
    loaded.channel_index = torch.arange(10)  # overwritten: the channel index comes from the file
    loaded.load(tmp_path)
    assert torch.equal(loaded.channel_index, fitted.channel_index)
    images = torch.cat([stripes([2]), stripes([6], square=True)])
    a, b = fitted.predict(images), loaded.predict(images)
    np.testing.assert_array_equal(a.image_scores, b.image_scores)
    np.testing.assert_array_equal(a.anomaly_maps, b.anomaly_maps)


# ---------------------------------------------------------------------- errors
def test_empty_training_set_is_a_data_error() -> None:
    with pytest.raises(DataError):
        detector().fit(torch.zeros(0, 1, SIZE, SIZE))


def test_missing_or_mismatched_weights_are_model_dir_errors(
    fitted: PadimDetector, tmp_path: Path
) -> None:
    with pytest.raises(ModelDirError, match="missing"):
        detector().load(tmp_path)
    fitted.save(tmp_path)
    with pytest.raises(ModelDirError, match="mean"):
        detector(size=32).load(tmp_path)  # another grid
    with pytest.raises(ModelDirError):
        detector(n_features=12).load(tmp_path)


@pytest.mark.parametrize("bad", [{"n_features": 0}, {"eps": 0}, {"unknown": 1}])
def test_bad_params_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build(PadimParams, bad, "padim model params")
    with pytest.raises(ConfigError):
        detector(**bad)


def test_more_features_than_channels_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n_features"):
        detector(n_features=25)

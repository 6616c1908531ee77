"""The seed-001 VAE: likelihood math, training, scoring, Inspector round trip, digits protocol."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import flawscope.models.vae  # noqa: F401  (registers "vae")
from flawscope.config import InspectorConfig, ModelConfig, ScoringConfig, TrainingConfig
from flawscope.data.dataset import labelled_samples
from flawscope.errors import ConfigError
from flawscope.inspector import Inspector
from flawscope.models.vae import ConvVAE, VAEDetector
from flawscope.training.vae_module import (
    elbo,
    iwae_bound,
    kl_standard_normal,
    log_likelihood,
    log_normal,
    negative_elbo_loss,
)

TINY = {"filters": [8, 16], "hidden": 16, "latent_dim": 4, "iw_samples": 8}


def _detector(size: int = 32, channels: int = 1, scoring: ScoringConfig | None = None, **params):
    model = ModelConfig(name="vae", image_size=size, channels=channels, params={**TINY, **params})
    training = TrainingConfig(epochs=1, batch_size=8, progress=False, accelerator="cpu")
    return VAEDetector(model, training, scoring or ScoringConfig(sigma=1.0))


def _blobs(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` images of one bright Gaussian blob at a random place."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.rand(n, 2, generator=g) * (size - 6) + 3
    d2 = (yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2
    return torch.exp(-d2 / 8.0)[:, None].float()


# ------------------------------------------------------------------ math
def test_log_likelihood_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 2, 4, 4)
    logits = torch.randn(5, 3, 2, 4, 4)  # K = 5 samples
    ll = log_likelihood(x, logits, "gaussian", 0.3)
    ref = Normal(torch.sigmoid(logits), 0.3).log_prob(x).sum((-3, -2, -1))
    assert ll.shape == (5, 3)
    torch.testing.assert_close(ll, ref)
    bern = log_likelihood(x, logits, "bernoulli")
    p = torch.sigmoid(logits)
    ref_b = (x * p.log() + (1 - x) * (1 - p).log()).sum((-3, -2, -1))
    torch.testing.assert_close(bern, ref_b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        log_likelihood(x, logits, "poisson")  # type: ignore[arg-type]


def test_paper_sigma_turns_the_gaussian_nll_into_squared_error() -> None:
    x, logits = torch.rand(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    nll = -log_likelihood(x, logits, "gaussian", 1 / math.sqrt(2))
    sse = ((x - torch.sigmoid(logits)) ** 2).sum((-3, -2, -1))
    torch.testing.assert_close(nll, sse + 9 / 2 * math.log(math.pi))


def test_kl_and_log_normal_match_torch() -> None:
    torch.manual_seed(1)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    q = Normal(mu, torch.exp(0.5 * logvar))
    ref = kl_divergence(q, Normal(torch.zeros(3), torch.ones(3))).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), ref)
    z = torch.randn(7, 4, 3)
    torch.testing.assert_close(log_normal(z, mu, logvar), q.log_prob(z).sum(-1))


def _linear_gaussian(k: int, seed: int = 0):
    """Exact log p(x) and K-sample bounds of p(z)=N(0,I), p(x|z)=N(Wz+b, s^2 I), a poor q."""
    g = torch.Generator().manual_seed(seed)
    n, d, dz, s = 64, 6, 2, 0.5
    w, b = torch.randn(d, dz, generator=g), torch.randn(d, generator=g)
    x = torch.randn(n, dz, generator=g) @ w.T + b + s * torch.randn(n, d, generator=g)
    exact = MultivariateNormal(b, w @ w.T + s**2 * torch.eye(d)).log_prob(x)
    # true posterior N(A (x - b), S) perturbed: a mean offset and a too-wide variance
    cov = torch.linalg.inv(torch.eye(dz) + w.T @ w / s**2)
    mu = (x - b) @ (cov @ w.T / s**2).T + 0.3
    logvar = torch.log(torch.diagonal(cov)).expand(n, dz) + 1.0
    z = mu + torch.exp(0.5 * logvar) * torch.randn(k, n, dz, generator=g)
    log_px_z = log_normal(x, z @ w.T + b, torch.full((d,), 2 * math.log(s)))
    return exact, log_px_z, z, mu, logvar


def test_iwae_is_between_elbo_and_exact_log_likelihood() -> None:
    exact, log_px_z, z, mu, logvar = _linear_gaussian(k=2000)
    e = elbo(log_px_z, mu, logvar)  # analytic KL
    iw16 = iwae_bound(log_px_z[:16], z[:16], mu, logvar)
    iw2000 = iwae_bound(log_px_z, z, mu, logvar)
    assert e.shape == iw16.shape == (64,)
    assert (e < exact).all()  # the ELBO bounds log p(x) from below (q is not the posterior)
    assert iw16.mean() > e.mean() + 0.1  # a tighter bound on average (Burda et al., Thm 1)
    assert iw2000.mean() > iw16.mean()
    assert (iw2000 - exact).abs().mean() < 0.05  # and converges to log p(x)
    # the sampled-KL ELBO agrees with the analytic one for many samples
    torch.testing.assert_close(elbo(log_px_z, mu, logvar, z), e, atol=0.05, rtol=0)


def test_iwae_with_one_sample_is_the_single_sample_elbo() -> None:
    _, log_px_z, z, mu, logvar = _linear_gaussian(k=3)
    for k in range(3):
        one = slice(k, k + 1)
        torch.testing.assert_close(
            iwae_bound(log_px_z[one], z[one], mu, logvar), elbo(log_px_z[one], mu, logvar, z[one])
        )
    # with K > 1 the IWAE estimate is >= the sampled ELBO for every image (Jensen)
    assert (iwae_bound(log_px_z, z, mu, logvar) >= elbo(log_px_z, mu, logvar, z) - 1e-5).all()


# ------------------------------------------------------------------ network and detector
@pytest.mark.parametrize(
    ("channels", "params", "residual"),
    [(1, {}, "l2"), (3, {"likelihood": "bernoulli", "score": "iwae"}, "ssim")],
)
def test_predict_shapes_ranges_and_determinism(channels: int, params: dict, residual: str) -> None:
    det = _detector(
        channels=channels, scoring=ScoringConfig(sigma=1.0, residual=residual), **params
    )
    x = torch.rand(5, channels, 32, 32)
    p = det.predict(x)
    assert p.image_scores.shape == (5,) and p.image_scores.dtype == np.float32
    assert np.isfinite(p.image_scores).all()
    assert p.anomaly_maps.shape == (5, 32, 32) and p.anomaly_maps.dtype == np.float32
    assert (p.anomaly_maps >= 0).all()
    r = p.reconstructions
    assert r is not None and r.shape == (5, channels, 32, 32) and r.dtype == np.float32
    assert r.min() >= 0 and r.max() <= 1
    # the same image gets the same score (up to float rounding), whatever batch it is in
    np.testing.assert_allclose(det.predict(x[:2]).image_scores, p.image_scores[:2], rtol=1e-5)
    np.testing.assert_array_equal(det.predict(x).image_scores, p.image_scores)
    d = det.score_details(x)
    assert d.neg_elbo.shape == d.neg_iwae.shape == (5,)
    expected = d.neg_iwae if params.get("score") == "iwae" else d.neg_elbo
    np.testing.assert_array_equal(p.image_scores, expected)


def test_network_shapes() -> None:
    net = ConvVAE(channels=3, image_size=32, filters=(4, 8, 8), hidden=10, latent_dim=5).eval()
    mu, logvar = net.encode(torch.rand(2, 3, 32, 32))
    assert mu.shape == logvar.shape == (2, 5)
    assert net.decode(torch.randn(7, 5)).shape == (7, 3, 32, 32)
    with pytest.raises(ValueError):
        ConvVAE(image_size=36, filters=(4, 8, 8))


def test_a_few_training_steps_lower_the_negative_elbo() -> None:
    torch.manual_seed(0)
    x = _blobs(32)
    net = ConvVAE(1, 16, (8, 16), 32, 2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss_at_fixed_noise() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(negative_elbo_loss(net, x))

    before = loss_at_fixed_noise()
    for _ in range(40):
        loss = negative_elbo_loss(net, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_at_fixed_noise()
    assert after < before - 5.0, (before, after)  # nats per image


@pytest.mark.parametrize(
    "params",
    [
        {"likelihood": "poisson"},
        {"score": "exact"},
        {"iw_samples": 0},
        {"latent_dim": 0},
        {"decoder_sigma": 0},
        {"filters": []},
        {"unknown": 1},
    ],
)
def test_bad_params_raise_config_error(params: dict) -> None:
    with pytest.raises(ConfigError):
        _detector(**params)


def test_image_size_must_fit_the_blocks() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        _detector(size=36, filters=[4, 4, 4])


def test_inspector_fit_save_load_gives_identical_scores(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = InspectorConfig.model_validate(
        {
            "model": {"name": "vae", "image_size": 32, "params": {**TINY, "score": "iwae"}},
            "training": {"epochs": 2, "batch_size": 8, "progress": False},
            "scoring": {"sigma": 1.0},
        }
    )
    insp = Inspector.fit(tiny_dataset, cfg)
    assert len(insp.history["val_loss"]) == 2 and np.isfinite(insp.history["train_loss"]).all()
    assert np.isfinite(insp.threshold)
    insp.save(tmp_path / "m")
    loaded = Inspector.load_dir(tmp_path / "m")
    images = insp.read(labelled_samples(tiny_dataset)).images
    a, b = insp.detector.predict(images), loaded.detector.predict(images)
    np.testing.assert_array_equal(a.image_scores, b.image_scores)
    np.testing.assert_array_equal(a.anomaly_maps, b.anomaly_maps)
    assert loaded.threshold == insp.threshold


# ------------------------------------------------------------------ digits protocol
def test_digits_protocol_runs_end_to_end() -> None:
    from benchmarks.digits_vae import format_table, load_digit_images, run_digit, split_indices

    images, labels = load_digit_images(16)
    assert images.shape == (1797, 1, 16, 16) and float(images.max()) <= 1.0
    keep = np.arange(400)  # a subset keeps this quick
    train, test = split_indices(labels[keep], 0.3, seed=0)
    r = run_digit(1, 2, images[keep], labels[keep], train, test, epochs=2, iw_samples=4, hidden=16)
    assert 0.0 <= r["auroc_elbo"] <= 1.0 and 0.0 <= r["auroc_iwae"] <= 1.0
    assert r["test_anomalous"] > 0 and r["test_normal"] > 5 * r["test_anomalous"]
    assert r["train_images"] + r["val_images"] == int((labels[keep][train] != 1).sum())
    assert r["epochs_run"] == 2
    table = format_table([r], [2])
    assert "| 1 |" in table and f"{r['auroc_elbo']:.3f}" in table

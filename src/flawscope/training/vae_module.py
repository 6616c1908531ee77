"""Likelihood math of the variational autoencoder and the LightningModule that trains it.

Source: Tonnaer et al., "Anomaly detection for visual quality control of 3D-printed products",
IJCNN 2019 (seed 001, of which the repository keeps only the abstract; the method, architecture
and MNIST protocol are cited from the extended version, chapter 3 of L. Tonnaer's PhD thesis at
TU Eindhoven, as "Sec. 3.x"), and Burda, Grosse & Salakhutdinov, "Importance weighted
autoencoders", ICLR 2016 (Sec. 2 and 5 there) for the importance-weighted estimate.

Model (Sec. 3.3.1, eq. 3.3-3.5): approximate posterior q(z|x) = N(mu_enc(x), diag sigma_enc(x)^2),
prior p(z) = N(0, I), decoder p(x|z) = N(mu_dec(z), sigma_dec^2 I) with sigma_dec fixed (the
paper uses 1/sqrt(2)); the Bernoulli decoder (continuous pixels in [0, 1] as binary
cross-entropy targets) is offered as the usual alternative. Trained by maximising the ELBO
(eq. 3.1) with one posterior sample per image; scored by the negative ELBO, estimated with many
samples (the paper uses 128), or by the negative importance-weighted (IWAE) bound.

Conventions of every function here: all log-densities are in nats and summed over the
dimensions of one image / one latent vector; ``K`` is the number of posterior samples, ``N`` the
number of images, ``L`` the latent dimension, ``(C, H, W)`` the image shape. A decoder outputs
*logits* ``(..., C, H, W)``: the Bernoulli parameter, or (Gaussian) the mean ``sigmoid(logits)``
in ``[0, 1]``, which keeps the mean in the pixel range as the paper's sigmoid output layer does.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from flawscope.training.module import ReconstructionModule

Likelihood = Literal["gaussian", "bernoulli"]

#: the paper's fixed decoder standard deviation, 1/sqrt(2) (Sec. 3.3.1, eq. 3.4): with it the
#: Gaussian negative log-likelihood is the sum of squared errors plus (D/2) log(pi)
PAPER_DECODER_SIGMA = 1.0 / math.sqrt(2.0)

_LOG_2PI = math.log(2.0 * math.pi)


def log_likelihood(
    x: torch.Tensor,
    logits: torch.Tensor,
    kind: Likelihood = "gaussian",
    sigma: float = PAPER_DECODER_SIGMA,
) -> torch.Tensor:
    """log p(x|z) of images under the decoder output, in nats, summed over ``(C, H, W)``.

    Args:
        x: ``(N, C, H, W)`` float images in ``[0, 1]``.
        logits: ``(..., N, C, H, W)`` decoder outputs (pre-sigmoid), broadcastable against ``x``
            from the left (e.g. ``(K, N, C, H, W)`` for K posterior samples).
        kind: ``"gaussian"``: N(x | sigmoid(logits), sigma^2) per pixel, fixed sigma (Sec. 3.3.1,
            eq. 3.4); ``"bernoulli"``: x log p + (1 - x) log(1 - p) with p = sigmoid(logits),
            i.e. minus the binary cross-entropy with continuous targets (not a normalised density
            over [0, 1]: its values are comparable between images, not between likelihoods).
        sigma: decoder standard deviation (Gaussian only), > 0.

    Returns:
        ``(..., N)`` float tensor (nats; <= 0 for Bernoulli, any sign for Gaussian).

    Raises:
        ValueError: unknown ``kind`` or ``sigma <= 0``.
    """
    if kind == "bernoulli":
        target = x.expand_as(logits) if logits.dim() > x.dim() else x
        ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    elif kind == "gaussian":
        if sigma <= 0:
            raise ValueError(f"decoder sigma must be > 0, got {sigma}")
        sq = (x - torch.sigmoid(logits)) ** 2
        ll = -0.5 * (_LOG_2PI + 2.0 * math.log(sigma)) - sq / (2.0 * sigma**2)
    else:
        raise ValueError(f"unknown likelihood {kind!r}; use 'gaussian' or 'bernoulli'")
    return ll.flatten(start_dim=-3).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z | mu, diag exp(logvar)) in nats, summed over the last (latent) dimension.

    Args:
        z: ``(..., L)``; mu, logvar: broadcastable to ``z`` (e.g. ``(N, L)`` against
            ``(K, N, L)``).

    Returns:
        ``(...)`` float tensor (nats).
    """
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z | 0, I) in nats (the prior p(z), Sec. 3.3.1 eq. 3.5), summed over the last dim.

    Args:
        z: ``(..., L)``.

    Returns:
        ``(...)`` float tensor (nats, <= -(L/2) log(2 pi)).
    """
    return -0.5 * (_LOG_2PI + z**2).sum(-1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(mu, diag exp(logvar)) || N(0, I)) in nats (the second term of eq. 3.1).

    Args:
        mu, logvar: ``(N, L)``.

    Returns:
        ``(N,)`` float tensor, >= 0 (nats).
    """
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar).sum(-1)


def elbo(
    log_px_z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """Monte Carlo estimate of the ELBO (Sec. 3.3.1, eq. 3.1), in nats per image.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)), a lower bound of log p(x). The expectation
    is the mean over the K samples; the KL term is analytic (as in the paper) unless ``z`` is
    given, in which case it is estimated from the same samples,
    mean_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] (the form that equals the IWAE bound at
    K = 1, Burda et al. 2016, Sec. 3).

    Args:
        log_px_z: ``(K, N)`` log p(x|z_k) (see :func:`log_likelihood`), K >= 1.
        mu, logvar: ``(N, L)`` parameters of q(z|x).
        z: optional ``(K, N, L)`` samples the ``log_px_z`` were computed at.

    Returns:
        ``(N,)`` float tensor (nats; higher = more likely). The anomaly score is its negative.
    """
    if z is None:
        return log_px_z.mean(0) - kl_standard_normal(mu, logvar)
    return (log_px_z + log_standard_normal(z) - log_normal(z, mu, logvar)).mean(0)


def iwae_bound(
    log_px_z: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) (Burda et al., ICLR 2016, Sec. 3, eq. 8), nats.

    log (1/K) sum_k p(x, z_k) / q(z_k|x) with z_k ~ q(z|x), computed stably with
    ``torch.logsumexp``. Its expectation is a lower bound of log p(x) that is at least the ELBO
    and tightens as K grows (Burda et al., Theorem 1); at K = 1 it equals the single-sample
    ELBO estimate ``elbo(log_px_z, mu, logvar, z)``.

    Args:
        log_px_z: ``(K, N)`` log p(x|z_k), K >= 1.
        z: ``(K, N, L)`` the samples z_k ~ q(z|x).
        mu, logvar: ``(N, L)`` parameters of q(z|x).

    Returns:
        ``(N,)`` float tensor (nats; higher = more likely). The anomaly score is its negative.
    """
    log_w = log_px_z + log_standard_normal(z) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class VAENetwork(Protocol):
    """What :class:`VAEModule` needs of a network (see :class:`flawscope.models.vae.ConvVAE`)."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, H, W)`` -> ``(mu, logvar)``, each ``(N, L)``."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(M, L)`` -> logits ``(M, C, H, W)``."""
        ...


def negative_elbo_loss(
    network: VAENetwork,
    x: torch.Tensor,
    kind: Likelihood = "gaussian",
    sigma: float = PAPER_DECODER_SIGMA,
) -> torch.Tensor:
    """Training loss: the single-sample negative ELBO, averaged over the batch (nats per image).

    One reparameterised sample z = mu + sigma_enc * eps per image (Sec. 3.3.1: "during training,
    a single sample suffices"), analytic KL term. Uses the global torch RNG.

    Args:
        network: has ``encode`` and ``decode`` (:class:`VAENetwork`).
        x: ``(N, C, H, W)`` float32 in ``[0, 1]``.

    Returns:
        Scalar float tensor (nats per image), differentiable.
    """
    mu, logvar = network.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    log_px_z = log_likelihood(x, network.decode(z), kind, sigma)
    return -elbo(log_px_z[None], mu, logvar).mean()


class VAEModule(ReconstructionModule):
    """Trains a VAE on ``(x,)`` batches of ``(N, C, H, W)`` float32 images in ``[0, 1]``.

    Loss: the single-sample negative ELBO per image in nats (:func:`negative_elbo_loss`),
    logged as ``train_loss`` / ``val_loss``. A training batch of a single image (the remainder
    of an epoch) is skipped, since the network's batch norms cannot train on it. Optimiser as
    :class:`flawscope.training.ReconstructionModule`: Adam (learning rate, weight decay) with
    ReduceLROnPlateau on ``val_loss`` (the paper trains with Adam on the negative ELBO,
    Sec. 3.3.1).
    """

    def __init__(
        self,
        network: nn.Module,
        likelihood: Likelihood = "gaussian",
        decoder_sigma: float = PAPER_DECODER_SIGMA,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        lr_patience: int = 3,
        lr_factor: float = 0.5,
    ) -> None:
        super().__init__(network, learning_rate, weight_decay, lr_patience, lr_factor)
        self.likelihood: Likelihood = likelihood
        self.decoder_sigma = decoder_sigma

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample negative ELBO per image in nats (:func:`negative_elbo_loss`)."""
        return negative_elbo_loss(self.network, x, self.likelihood, self.decoder_sigma)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor | None:
        if len(batch[0]) < 2:  # batch norm cannot train on one image; Lightning skips None
            return None
        return super().training_step(batch, batch_idx)

"""``vae``: the convolutional variational autoencoder of seed 001 (Tonnaer et al., IJCNN 2019).

A VAE is trained on good images only by maximising the ELBO; an image's anomaly score is its
negative log-likelihood estimate in nats (low likelihood = anomalous), and the anomaly map is the
residual of its reconstruction, which helps a human observer localise the defect (abstract;
Sec. 3.3 of the extended version, chapter 3 of L. Tonnaer's PhD thesis, TU Eindhoven, cited as
"Sec. 3.x" here and in :mod:`flawscope.training.vae_module`, which holds the likelihood math).

Architecture as Sec. 3.4 gives it ("VAE architectures for MNIST and 3D-printed products"):

- encoder: VGG-like blocks, each a 3x3 convolution (stride 1, 'same' padding) with ReLU, 2x2
  max-pooling, then batch normalisation; then a fully-connected hidden layer (ReLU, batch norm)
  and a linear layer giving mu_enc and log sigma_enc^2 (no non-linearity);
- decoder: the encoder reversed, max-pooling replaced by nearest-neighbour up-sampling: linear
  layer to ``hidden`` (ReLU, batch norm), linear layer to the last block's feature map (ReLU,
  batch norm), then per block 2x up-sampling, 3x3 convolution, ReLU, batch norm, mapping the
  filters back in reverse order; the last block's convolution outputs C channels whose sigmoid
  is mu_dec (pixel means in [0, 1]). Where the paper is silent (exact placement of the batch
  norms in the decoder, the layers between the dense part and the first up-sampling) this is
  our reading, chosen to mirror the encoder layer by layer.
- defaults: four blocks of 16, 32, 64, 128 filters, 64 hidden units, latent dimension 2 (the
  paper's first 3D-printed-product model; on MNIST, Sec. 3.5.1, 2 latent dimensions beat 32 for
  nearly every anomalous digit). The MNIST models use filters (32, 64), see
  ``benchmarks/digits_vae.py``. The input side must be a multiple of 2^(number of blocks).

Likelihood (Sec. 3.3.1, eq. 3.4): Gaussian with the fixed sigma_dec = 1/sqrt(2) by default
(``decoder_sigma``; fixed, not learned), or Bernoulli (binary cross-entropy with continuous
targets). Score (Sec. 3.3.3): the negative ELBO, estimated with ``iw_samples`` = 128 posterior
samples as in the paper, or the negative importance-weighted bound of Burda et al. (ICLR 2016)
from the same samples (``score: iwae``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from flawscope.errors import ConfigError
from flawscope.models.base import Prediction, register
from flawscope.models.reconstruction import ReconstructionDetector
from flawscope.training import fit_network
from flawscope.training.vae_module import (
    PAPER_DECODER_SIGMA,
    VAEModule,
    elbo,
    iwae_bound,
    log_likelihood,
)

#: bound on decoder evaluations held in memory at once, in (filters[0] x pixels) units
_DECODE_BUDGET = 2**26


class VAEParams(BaseModel):
    """Hyperparameters of :class:`VAEDetector` (defaults: seed 001, Sec. 3.3-3.4).

    Attributes:
        filters: filters of the convolutional blocks, 1 to 6 blocks (input side must be a
            multiple of 2^blocks).
        hidden: units of the fully-connected hidden layer.
        latent_dim: dimension L of z.
        likelihood: decoder distribution, ``"gaussian"`` (fixed ``decoder_sigma``) or
            ``"bernoulli"``.
        decoder_sigma: the Gaussian decoder's fixed standard deviation (pixel units, > 0);
            ignored for Bernoulli.
        score: image score, ``"elbo"`` (negative ELBO, the paper's) or ``"iwae"`` (negative
            importance-weighted bound).
        iw_samples: K posterior samples per image for either score (the paper: 128). Scoring
            costs one decoder pass per sample and image: on a CPU with large inputs a smaller K
            (e.g. 16) trades estimator variance for speed.
    """

    model_config = ConfigDict(extra="forbid")
    filters: tuple[PositiveInt, ...] = Field((16, 32, 64, 128), min_length=1, max_length=6)
    hidden: PositiveInt = 64
    latent_dim: PositiveInt = 2
    likelihood: Literal["gaussian", "bernoulli"] = "gaussian"
    decoder_sigma: float = Field(PAPER_DECODER_SIGMA, gt=0)
    score: Literal["elbo", "iwae"] = "elbo"
    iw_samples: int = Field(128, ge=1, le=4096)


class ConvVAE(nn.Module):
    """Seed-001 convolutional VAE: ``(N, C, S, S)`` float32 in ``[0, 1]`` <-> ``(N, L)`` latents.

    ``encode`` gives the posterior parameters, ``decode`` the decoder logits (mu_dec =
    sigmoid(logits)); ``forward`` the posterior-mean reconstruction. S must be a multiple of
    ``2 ** len(filters)``.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 32,
        filters: tuple[int, ...] = (32, 64),
        hidden: int = 64,
        latent_dim: int = 2,
    ) -> None:
        super().__init__()
        n = len(filters)
        if image_size % (2**n):
            raise ValueError(f"image size {image_size} is not a multiple of {2**n}")
        self.latent_dim = latent_dim
        self.side = image_size // 2**n
        self.last = filters[-1]
        flat = self.last * self.side**2

        blocks: list[nn.Module] = []
        cin = channels
        for f in filters:
            blocks += [
                nn.Conv2d(cin, f, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.BatchNorm2d(f),
            ]
            cin = f
        self.encoder = nn.Sequential(
            *blocks,
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, 2 * latent_dim),
        )
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, flat),
            nn.ReLU(),
        )
        up: list[nn.Module] = [nn.BatchNorm2d(self.last)]
        outs = [*reversed(filters[:-1]), channels]
        cin = self.last
        for i, f in enumerate(outs):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, f, 3, padding=1)]
            if i < len(outs) - 1:
                up += [nn.ReLU(), nn.BatchNorm2d(f)]
            cin = f
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, S, S)`` -> ``(mu, logvar)`` of q(z|x), each ``(N, L)`` (logvar clamped)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(M, L)`` latents -> decoder logits ``(M, C, S, S)`` (mu_dec = sigmoid(logits))."""
        h = self.dense(z).view(len(z), self.last, self.side, self.side)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior-mean reconstruction sigmoid(decode(mu(x))), ``(N, C, S, S)`` in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x)[0]))


@dataclass
class VAEScores:
    """Both likelihood scores of N images from the same K posterior samples.

    Attributes:
        neg_elbo: ``(N,)`` float32, negative ELBO in nats (analytic KL, K-sample mean of
            log p(x|z)).
        neg_iwae: ``(N,)`` float32, negative IWAE estimate of log p(x) in nats (<= neg_elbo on
            average; equal in expectation at K = 1).
        reconstructions: ``(N, C, S, S)`` float32 in [0, 1], posterior-mean reconstructions.
    """

    neg_elbo: np.ndarray
    neg_iwae: np.ndarray
    reconstructions: np.ndarray


@register("vae")
class VAEDetector(ReconstructionDetector):
    """The seed-001 VAE behind the ``Detector`` interface (name ``vae``).

    Inputs ``(N, C, S, S)`` float32 in ``[0, 1]``; scores in nats (negative log-likelihood
    estimate, higher = more anomalous); maps = smoothed residual of the posterior-mean
    reconstruction (``scoring.residual``: squared error or 1 - SSIM), so unlike the plain
    autoencoders the map is *not* in the score's units and ``scoring.aggregation`` is unused.
    Scoring draws its posterior samples from a generator seeded with ``training.seed``, the
    same K noise vectors for every image: an image's score depends on the image and the weights
    only (not on the batch it comes in, up to float rounding), and a saved and re-loaded model
    gives identical scores.
    """

    Params = VAEParams
    params: VAEParams

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        """Total down-sampling factor: 2 ** number of blocks."""
        return 2 ** len(self.params.filters)

    def build_network(self) -> ConvVAE:
        """The untrained :class:`ConvVAE` for the configured channels and input size.

        Raises:
            ConfigError: ``model.channels`` is still ``"auto"``.
        """
        m, p = self.model_cfg, self.params
        if m.channels == "auto":
            raise ConfigError(
                'model.channels is "auto", which only Inspector.fit can resolve',
                "set model.channels to 1 or 3",
            )
        return ConvVAE(m.channels, m.image_size, tuple(p.filters), p.hidden, p.latent_dim)

    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None) -> VAEDetector:
        """Train by maximising the ELBO on good ``(N, C, S, S)`` images, early-stopping on ``val``.

        Loss: single-sample negative ELBO in nats per image (:class:`VAEModule`); ``history``
        holds its per-epoch ``train_loss`` / ``val_loss``. When ``val`` is None the training
        images also serve for validation.
        """
        t, p = self.training_cfg, self.params
        self.network.train()
        module = VAEModule(
            self.network,
            p.likelihood,
            p.decoder_sigma,
            t.learning_rate,
            t.weight_decay,
            t.lr_patience,
            t.lr_factor,
        )
        held = train if val is None else val
        self.history = fit_network(module, train, held, t, augment=t.augment)
        self.network = module.network.eval()
        return self

    def _noise(self, device: torch.device) -> torch.Tensor:
        """``(K, L)`` standard-normal noise, the same for every call (seed ``training.seed``)."""
        gen = torch.Generator().manual_seed(self.training_cfg.seed)
        eps = torch.randn(self.params.iw_samples, self.params.latent_dim, generator=gen)
        return eps.to(device)

    @torch.no_grad()
    def score_details(self, batch: torch.Tensor) -> VAEScores:
        """Negative ELBO and negative IWAE estimate (nats) of ``(N, C, S, S)`` images.

        Both use the same K = ``iw_samples`` reparameterised samples z_k = mu + sigma * eps_k
        (eps_k fixed by ``training.seed``); decoder passes are chunked so memory stays bounded.
        """
        net = self.network
        p = self.params
        device = next(net.parameters()).device
        x = batch.to(device=device, dtype=torch.float32)
        n = len(x)
        mu, logvar = net.encode(x)
        recon = torch.sigmoid(net.decode(mu))
        std = torch.exp(0.5 * logvar)
        eps = self._noise(device)
        per_decode = p.filters[0] * x.shape[-1] * x.shape[-2]
        chunk = max(1, _DECODE_BUDGET // per_decode // max(n, 1))
        lls, zs = [], []
        for e in eps.split(chunk):
            z = mu[None] + std[None] * e[:, None, :]  # (k, N, L)
            logits = net.decode(z.flatten(0, 1)).unflatten(0, (len(e), n))
            lls.append(log_likelihood(x, logits, p.likelihood, p.decoder_sigma))
            zs.append(z)
        log_px_z, z = torch.cat(lls), torch.cat(zs)
        neg_elbo = -elbo(log_px_z, mu, logvar)
        neg_iwae = -iwae_bound(log_px_z, z, mu, logvar)
        return VAEScores(
            neg_elbo.float().cpu().numpy(),
            neg_iwae.float().cpu().numpy(),
            recon.float().cpu().numpy(),
        )

    def predict(self, batch: torch.Tensor) -> Prediction:
        """Score ``(N, C, S, S)`` images in ``[0, 1]``.

        Returns:
            ``Prediction`` with ``image_scores`` ``(N,)`` float32, the negative ELBO or negative
            IWAE estimate (``params.score``) in nats (higher = more anomalous; finite, usually
            positive); ``anomaly_maps`` ``(N, S, S)`` float32 >= 0, the smoothed residual of the
            posterior-mean reconstruction (:meth:`anomaly_maps`); ``reconstructions``
            ``(N, C, S, S)`` float32 in [0, 1].
        """
        s = self.score_details(batch)
        scores = s.neg_elbo if self.params.score == "elbo" else s.neg_iwae
        maps = self.anomaly_maps(batch.numpy(), s.reconstructions)
        return Prediction(scores.astype(np.float32), maps, s.reconstructions)


__all__ = ["ConvVAE", "VAEDetector", "VAEParams", "VAEScores"]

"""``strided-ae``: the strided-convolution autoencoder of seed 002 (MVTec AD capsule).

Architecture as seed 002 ("Autoencoder Design") describes it:

* encoder: "3 convolutional layers with strided convolutions for downsampling", channel
  progression ``C -> 32 -> 64 -> 128``, "ReLU activation and Batch Normalization after each
  convolution", "Dropout applied to encoder";
* decoder: "3 deconvolutional layers mirroring the encoder's channel progression" (``128 -> 64 ->
  32 -> C``), BatchNorm and ReLU "after each layer, except the final layer", which "uses a Sigmoid
  activation to normalize outputs to [0, 1]".

What the seed leaves open, and what is used here: kernel size, stride and padding are not given,
so every (de)convolution is 4x4, stride 2, padding 1 (exact halving / doubling of the side); the
seed names BatchNorm and ReLU without an order, so each block is Conv -> BatchNorm -> ReLU; the
dropout rate and position are not given, so ``nn.Dropout(dropout)`` (default 0.2) follows each of
the three encoder blocks. The input side must be a multiple of 8 (three stride-2 layers).

Shapes for the seed's 512x512 grey input, ``(N, C, H, W)`` float32:

====================================================  ===================
layer                                                 output
====================================================  ===================
input                                                 ``(N, 1, 512, 512)``
Conv 4x4/2 (1->32), BatchNorm, ReLU, Dropout           ``(N, 32, 256, 256)``
Conv 4x4/2 (32->64), BatchNorm, ReLU, Dropout          ``(N, 64, 128, 128)``
Conv 4x4/2 (64->128), BatchNorm, ReLU, Dropout         ``(N, 128, 64, 64)``
ConvTranspose 4x4/2 (128->64), BatchNorm, ReLU         ``(N, 64, 128, 128)``
ConvTranspose 4x4/2 (64->32), BatchNorm, ReLU          ``(N, 32, 256, 256)``
ConvTranspose 4x4/2 (32->1), Sigmoid                   ``(N, 1, 512, 512)``
====================================================  ===================

Training (shared by all reconstruction detectors, :mod:`flawscope.training`): MSE, Adam with
weight decay, ReduceLROnPlateau on the validation loss, best checkpoint. The seed's own settings
are run settings, not defaults here: grey images resized to 512x512, up to 100 epochs, batch size
16 and learning rate 0.001 (both flawscope defaults), Adam with weight decay (the seed gives no
value), i.e. ``flawscope fit DATA --model strided-ae --image-size 512 --epochs 100`` with
``training.weight_decay`` > 0 in a ``--config`` YAML (flawscope's default is 0). The seed keeps
the checkpoint with the lowest training loss; flawscope keeps the one with the lowest hold-out
loss.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from flawscope.models.base import register
from flawscope.models.reconstruction import ReconstructionDetector

#: kernel, stride and padding of every (de)convolution; seed 002 gives none (see module docstring)
KERNEL, STRIDE, PADDING = 4, 2, 1


class StridedAEParams(BaseModel):
    """Hyperparameters of :class:`StridedAE` (defaults = seed 002).

    ``filters``: encoder channels of the three strided convolutions (the decoder mirrors them);
    ``dropout``: rate of the dropout after each encoder block, in ``[0, 1)`` (seed gives no rate).
    """

    model_config = ConfigDict(extra="forbid")
    filters: tuple[PositiveInt, PositiveInt, PositiveInt] = (32, 64, 128)
    dropout: float = Field(0.2, ge=0, lt=1)


class StridedAE(nn.Module):
    """Seed-002 strided autoencoder: ``(N, C, H, W)`` float32 in ``[0, 1]`` -> same, in ``[0, 1]``.

    H and W must be multiples of 8. ``encoder`` maps the input to the bottleneck
    ``(N, filters[2], H/8, W/8)`` (ReLU output, >= 0); ``decoder`` maps it back through a sigmoid.

    Args:
        channels: image channels C (1 grey, 3 RGB).
        filters: encoder channels, default ``(32, 64, 128)`` (seed 002).
        dropout: dropout rate after each encoder block, default 0.2 (not given by the seed).
    """

    def __init__(
        self,
        channels: int = 1,
        filters: tuple[int, int, int] = (32, 64, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        f1, f2, f3 = filters

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, KERNEL, STRIDE, PADDING),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.ConvTranspose2d(cin, cout, KERNEL, STRIDE, PADDING),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]

        self.encoder = nn.Sequential(*down(channels, f1), *down(f1, f2), *down(f2, f3))
        self.decoder = nn.Sequential(
            *up(f3, f2),
            *up(f2, f1),
            nn.ConvTranspose2d(f1, channels, KERNEL, STRIDE, PADDING),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` ``(N, C, H, W)``: float32 of the same shape, values in ``[0, 1]``."""
        return self.decoder(self.encoder(x))


@register("strided-ae")
class StridedAEDetector(ReconstructionDetector):
    """The seed-002 strided autoencoder behind the ``Detector`` interface (name ``strided-ae``).

    Input ``(N, C, S, S)`` float32 in ``[0, 1]`` with S a multiple of 8 (else
    :class:`~flawscope.errors.ConfigError`); anomaly maps and scores as in
    :class:`~flawscope.models.reconstruction.ReconstructionDetector`.
    """

    Params = StridedAEParams
    size_multiple = 8

    def build_network(self) -> nn.Module:
        """The untrained :class:`StridedAE` for ``model.channels`` and the params."""
        p = self.params
        return StridedAE(self.model_cfg.channels, tuple(p.filters), p.dropout)

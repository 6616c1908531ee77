"""``dense-cae``: the deep CAE with a dense 100-25-100 bottleneck of seed 003 ("FinalAE").

Source: seed 003 (master's thesis, LEGO polymer surfaces), section 3.8.3 "Chosen Architecture"
and Appendix A, Listing A.2 "Anomaly detection model" (Keras, ``AE_name = 'FinalAE'``). The
listing, layer by layer (31 layers, as section 3.8.3 says):

* encoder: five blocks of two ``Conv2D(f, (3, 3), activation='relu', padding='same')`` with
  f = 16, 32, 64, 128, 256; ``Dropout(0.2)`` after the first block; ``MaxPooling2D((2, 2),
  strides=2)`` between consecutive blocks (four poolings, none after the 256 block);
* bottleneck: ``Dense(100)``, ``Dense(25)``, ``Dense(100)`` with no activation argument, i.e.
  linear;
* decoder: four times ``Conv2DTranspose(f, (3, 3), strides=2, padding='same')`` (no activation,
  i.e. linear) followed by two ReLU ``Conv2D(f, (3, 3), padding='same')``, f = 128, 64, 32, 16;
  then ``Conv2D(1, (3, 3), activation='sigmoid', padding='same')`` (C channels here).

Two points of translation from Keras:

* Keras ``Dense`` applied to the 4-D ``(N, H, W, 256)`` tensor acts on the last (channel) axis at
  every spatial position with shared weights; it does not flatten. The listing therefore computes
  a per-pixel linear map 256 -> 100 -> 25 -> 100, implemented here as three 1x1 convolutions
  (identical to ``nn.Linear`` on the channel axis). The spatial size is kept: the bottleneck is
  ``(N, 25, S/16, S/16)``, not a 25-vector.
* Keras' ``Conv2DTranspose(3x3, strides=2, padding='same')`` doubles the side and aligns its
  output like the gradient of a TF "same" convolution (no padding before, one after). PyTorch's
  ``padding=1, output_padding=1`` gives the same size shifted by one pixel, so
  :class:`KerasSameConvTranspose2d` runs the unpadded transposed convolution and crops it the way
  TF does.

Weights use PyTorch's default initialisation (Keras uses Glorot-uniform); the trained network is
what matters, not the starting point.

The four poolings and four stride-2 up-samplings make the output side equal the input side when
the side is a multiple of 16 (``size_multiple``). Shapes for the seed's 320x320 grey tile,
``(N, C, H, W)`` float32:

=================================================  ====================
layer                                              output
=================================================  ====================
input                                              ``(N, 1, 320, 320)``
2 x Conv 3x3 16 ReLU, Dropout 0.2                  ``(N, 16, 320, 320)``
MaxPool 2, 2 x Conv 3x3 32 ReLU                    ``(N, 32, 160, 160)``
MaxPool 2, 2 x Conv 3x3 64 ReLU                    ``(N, 64, 80, 80)``
MaxPool 2, 2 x Conv 3x3 128 ReLU                   ``(N, 128, 40, 40)``
MaxPool 2, 2 x Conv 3x3 256 ReLU                   ``(N, 256, 20, 20)``
"Dense" 100, 25, 100 (1x1 convs, linear)           ``(N, 100, 20, 20)``
ConvTranspose 3x3/2 128, 2 x Conv 3x3 128 ReLU     ``(N, 128, 40, 40)``
ConvTranspose 3x3/2 64, 2 x Conv 3x3 64 ReLU       ``(N, 64, 80, 80)``
ConvTranspose 3x3/2 32, 2 x Conv 3x3 32 ReLU       ``(N, 32, 160, 160)``
ConvTranspose 3x3/2 16, 2 x Conv 3x3 16 ReLU       ``(N, 16, 320, 320)``
Conv 3x3 1, Sigmoid                                ``(N, 1, 320, 320)``
=================================================  ====================

The seed's input is a 320x320 mirror-padded tile of a 1536x1024 image (overlap-tile: each tile
cropped back to its 256x256 centre and stitched). flawscope has no overlap tiling yet, so this
detector runs on whole images resized to the input size; the seed's setting is ``flawscope fit
DATA --model dense-cae --image-size 320``. Training: MSE and Adam (seed 003 compiles with
``optimizer='adam', loss='mse'``), with flawscope's shared loop (:mod:`flawscope.training`).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from flawscope.models.base import register
from flawscope.models.reconstruction import ReconstructionDetector

FiveInts = tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt]
ThreeInts = tuple[PositiveInt, PositiveInt, PositiveInt]


class DenseCAEParams(BaseModel):
    """Hyperparameters of :class:`DenseCAE` (defaults = seed 003, Listing A.2).

    ``filters``: channels of the five encoder blocks (the decoder uses the first four, reversed);
    ``dense``: widths of the three per-position dense layers (the middle one is the bottleneck);
    ``dropout``: rate of the dropout after the first encoder block, in ``[0, 1)``.
    """

    model_config = ConfigDict(extra="forbid")
    filters: FiveInts = (16, 32, 64, 128, 256)
    dense: ThreeInts = (100, 25, 100)
    dropout: float = Field(0.2, ge=0, lt=1)


class KerasSameConvTranspose2d(nn.ConvTranspose2d):
    """Keras/TF ``Conv2DTranspose(..., strides=s, padding='same')``: ``(N, Cin, H, W)`` ->
    ``(N, Cout, s*H, s*W)`` float32, no activation.

    Runs the unpadded transposed convolution (side ``(H-1)*s + k``) and keeps the ``s*H`` rows and
    columns TF keeps: it drops ``(k - s) // 2`` at the start and the rest at the end, which makes
    this the exact adjoint of a TF "same" convolution with the same weights (for k >= s).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} < stride {stride} is not supported")
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.crop = (kernel_size - stride) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Up-sample ``x`` ``(N, Cin, H, W)`` to ``(N, Cout, s*H, s*W)``."""
        h, w = x.shape[-2:]
        sh, sw = self.stride
        c = self.crop
        return super().forward(x)[..., c : c + sh * h, c : c + sw * w]


class DenseCAE(nn.Module):
    """Seed-003 "FinalAE": ``(N, C, H, W)`` float32 in ``[0, 1]`` -> same shape, in ``[0, 1]``.

    H and W must be multiples of 16 (four 2x2 poolings). ``encoder`` gives
    ``(N, filters[4], H/16, W/16)`` (ReLU, >= 0); ``bottleneck`` (three linear 1x1 convolutions,
    the Keras ``Dense`` layers on the channel axis) gives ``(N, dense[2], H/16, W/16)`` through
    ``dense[1]`` channels; ``decoder`` up-samples back to ``(N, C, H, W)`` through a sigmoid.

    Args:
        channels: image channels C (1 grey, 3 RGB).
        filters: channels of the five encoder blocks, default ``(16, 32, 64, 128, 256)``.
        dense: per-position dense widths, default ``(100, 25, 100)``.
        dropout: rate of the dropout after the first encoder block, default 0.2.
    """

    def __init__(
        self,
        channels: int = 1,
        filters: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256),
        dense: tuple[int, int, int] = (100, 25, 100),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()

        def convs(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(),
            ]

        enc: list[nn.Module] = [*convs(channels, filters[0]), nn.Dropout(dropout)]
        for cin, cout in zip(filters[:-1], filters[1:], strict=True):
            enc += [nn.MaxPool2d(2, 2), *convs(cin, cout)]
        self.encoder = nn.Sequential(*enc)

        d1, d2, d3 = dense
        self.bottleneck = nn.Sequential(
            nn.Conv2d(filters[-1], d1, 1), nn.Conv2d(d1, d2, 1), nn.Conv2d(d2, d3, 1)
        )

        dec: list[nn.Module] = []
        cin = d3
        for cout in reversed(filters[:-1]):
            dec += [KerasSameConvTranspose2d(cin, cout, 3, 2), *convs(cout, cout)]
            cin = cout
        dec += [nn.Conv2d(cin, channels, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` ``(N, C, H, W)``: float32 of the same shape, values in ``[0, 1]``."""
        return self.decoder(self.bottleneck(self.encoder(x)))


@register("dense-cae")
class DenseCAEDetector(ReconstructionDetector):
    """The seed-003 dense-bottleneck CAE behind the ``Detector`` interface (name ``dense-cae``).

    Input ``(N, C, S, S)`` float32 in ``[0, 1]`` with S a multiple of 16 (else
    :class:`~flawscope.errors.ConfigError`); seed 003 uses S = 320. Anomaly maps and scores as in
    :class:`~flawscope.models.reconstruction.ReconstructionDetector`.
    """

    Params = DenseCAEParams
    size_multiple = 16

    def build_network(self) -> nn.Module:
        """The untrained :class:`DenseCAE` for ``model.channels`` and the params."""
        p = self.params
        return DenseCAE(self.model_cfg.channels, tuple(p.filters), tuple(p.dense), p.dropout)

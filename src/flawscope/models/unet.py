"""The U-Net of seed 003 (Appendix A.1, Listing A.1) as a PyTorch module.

Source: seed 003 (master's thesis, LEGO polymer surfaces), section 2.4.2 "U-Net", section 3.6.3
"U-Net implementation" and Appendix A, Listing A.1 "U-Net models in code" (Keras, after
Bhattiprolu); the architecture is that of Ronneberger, Fischer and Brox, "U-Net: Convolutional
networks for biomedical image segmentation", MICCAI 2015, with 'same' padding (output side =
input side) and dropout inside each block. The listing, layer by layer:

* contracting path, five levels ``c1`` .. ``c5`` of ``Conv2D(f, (3, 3), activation="relu",
  kernel_initializer='he_normal', padding='same')``, ``Dropout(d)``, the same ``Conv2D`` again,
  with f = 16, 32, 64, 128, 256 and d = 0.1, 0.1, 0.1, 0.2, 0.3; ``MaxPooling2D((2, 2))`` after
  levels 1-4 (none after ``c5``);
* expansive path, four levels ``u6`` .. ``u9``: ``Conv2DTranspose(f, (2, 2), strides=(2, 2),
  padding='same')`` (no activation, i.e. linear), ``concatenate([u, c])`` with the encoder level
  of the same size (up-sampled maps first, then the skip), then conv / ``Dropout(d)`` / conv as
  above, f = 128, 64, 32, 16 and d = 0.2, 0.2, 0.1, 0.1;
* output: ``Conv2D(1, (1, 1), activation='sigmoid')``.

Translation from Keras:

* The listing divides its uint8 input by 255 in a ``Lambda`` layer; here the input is already
  float32 in ``[0, 1]``.
* :meth:`UNet.forward` returns the *logits* of the 1x1 output convolution; :meth:`UNet.predict`
  applies the sigmoid. Training uses ``BCEWithLogitsLoss``, which equals the listing's
  ``binary_crossentropy`` on ``sigmoid(logits)`` mathematically and is numerically stable (no
  ``log(0)``; Keras instead clips the probabilities to ``[1e-7, 1 - 1e-7]``).
* Initialisation follows the listing where it names one: the 3x3 convolutions use Keras'
  ``he_normal`` (normal truncated at 2 standard deviations, standard deviation
  ``sqrt(2 / fan_in) / 0.8796`` so that the *truncated* distribution has variance
  ``2 / fan_in``); the transposed and the 1x1 output convolutions get the Keras default
  (Glorot-uniform); all biases start at zero (Keras' default). With ReLU networks this deep the
  He initialisation is the one that matters.
* ``Dropout`` is the ordinary element-wise dropout (``nn.Dropout``), as in Keras.

Shapes for the thesis' 512x512 grey input (section 3.6.3: "The images first get resized down to
512x512"), default filters, ``(N, C, H, W)`` float32:

====================================================  ======================  =========
level                                                 output                  dropout
====================================================  ======================  =========
input                                                 ``(N, 1, 512, 512)``
c1: Conv 3x3 16 ReLU, Dropout, Conv 3x3 16 ReLU       ``(N, 16, 512, 512)``   0.1
c2: MaxPool 2, 2 x Conv 3x3 32                        ``(N, 32, 256, 256)``   0.1
c3: MaxPool 2, 2 x Conv 3x3 64                        ``(N, 64, 128, 128)``   0.1
c4: MaxPool 2, 2 x Conv 3x3 128                       ``(N, 128, 64, 64)``    0.2
c5: MaxPool 2, 2 x Conv 3x3 256 (bottom)              ``(N, 256, 32, 32)``    0.3
u6: ConvT 2x2/2 128, concat c4 (256 ch), 2 x Conv 128 ``(N, 128, 64, 64)``    0.2
u7: ConvT 2x2/2 64, concat c3 (128 ch), 2 x Conv 64   ``(N, 64, 128, 128)``   0.2
u8: ConvT 2x2/2 32, concat c2 (64 ch), 2 x Conv 32    ``(N, 32, 256, 256)``   0.1
u9: ConvT 2x2/2 16, concat c1 (32 ch), 2 x Conv 16    ``(N, 16, 512, 512)``   0.1
output: Conv 1x1 1 (logits; sigmoid in ``predict``)   ``(N, 1, 512, 512)``
====================================================  ======================  =========

1,941,105 trainable parameters for 3 input channels (as the Keras summary of the listing with
``IMG_CHANNELS = 3``), 1,940,817 for 1 channel. The four poolings need input sides that are
multiples of 16 (:data:`SIZE_MULTIPLE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from flawscope.errors import ConfigError

#: filters of the five levels in Listing A.1 (c1 .. c5)
FILTERS: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
#: dropout rates of the encoder levels c1 .. c5 and of the decoder levels c6 .. c9 (Listing A.1)
ENCODER_DROPOUT: tuple[float, ...] = (0.1, 0.1, 0.1, 0.2, 0.3)
DECODER_DROPOUT: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1)
#: input sides must be multiples of this (four 2x2 poolings)
SIZE_MULTIPLE = 16

# std of a standard normal truncated to [-2, 2]; Keras divides by it (VarianceScaling)
_TRUNCATED_STD = 0.87962566103423978


def check_filters(filters: Sequence[int]) -> tuple[int, int, int, int, int]:
    """Validate the five per-level filter counts.

    Raises:
        ConfigError: not exactly five positive integers.
    """
    values = list(filters) if isinstance(filters, Sequence) else []
    whole = all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in values)
    if len(values) != 5 or not whole:
        raise ConfigError(
            f"U-Net filters must be five positive integers, got {filters!r}",
            f"use e.g. {list(FILTERS)} (the thesis' Listing A.1)",
        )
    out = tuple(values)
    return out  # type: ignore[return-value]


def _he_normal(conv: nn.Conv2d) -> None:
    """Keras ``he_normal``: truncated normal (2 std), variance ``2 / fan_in``; zero bias."""
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
    nn.init.trunc_normal_(conv.weight, 0.0, std, -2.0 * std, 2.0 * std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _glorot(conv: nn.Module) -> None:
    """Keras' default ``glorot_uniform`` kernel and zero bias."""
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)


class _Block(nn.Sequential):
    """Conv 3x3 ReLU, Dropout, Conv 3x3 ReLU ('same' padding, He-normal): one U-Net level."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        first = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        second = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        _he_normal(first)
        _he_normal(second)
        super().__init__(
            first, nn.ReLU(inplace=True), nn.Dropout(dropout), second, nn.ReLU(inplace=True)
        )


class UNet(nn.Module):
    """The U-Net of Listing A.1: ``(N, C, H, W)`` image -> ``(N, 1, H, W)`` foreground logits.

    Args:
        channels: input channels C (1 grey, 3 RGB).
        filters: filters of the five levels, ``(16, 32, 64, 128, 256)`` in the thesis; the
            decoder mirrors them.

    Raises:
        ConfigError: ``filters`` is not five positive integers, or ``channels`` is not >= 1.
    """

    def __init__(self, channels: int = 1, filters: Sequence[int] = FILTERS) -> None:
        super().__init__()
        f = check_filters(filters)
        if int(channels) < 1:
            raise ConfigError(f"U-Net channels must be >= 1, got {channels}", "use 1 or 3")
        self.channels = int(channels)
        self.filters = f
        ins = (self.channels, *f[:-1])
        self.down = nn.ModuleList(
            _Block(i, o, d) for i, o, d in zip(ins, f, ENCODER_DROPOUT, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        # decoder level k goes from f[4 - k] to f[3 - k] filters (u6 .. u9)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2) for i in (3, 2, 1, 0)
        )
        self.dec = nn.ModuleList(
            _Block(2 * f[i], f[i], d) for i, d in zip((3, 2, 1, 0), DECODER_DROPOUT, strict=True)
        )
        self.head = nn.Conv2d(f[0], 1, 1)
        for m in (*self.up, self.head):
            _glorot(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` float32 of a ``(N, C, H, W)`` float32 batch in ``[0, 1]``.

        Raises:
            ConfigError: H or W is not a multiple of 16.
        """
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ConfigError(
                f"U-Net input is {h}x{w} px; both sides must be multiples of {SIZE_MULTIPLE}",
                f"resize the input to e.g. {max(16, h - h % 16)}x{max(16, w - w % 16)}",
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom level (c5) has no skip connection
        for up, block in zip(self.up, self.dec, strict=True):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probabilities ``(N, 1, H, W)`` float32 in ``[0, 1]`` (eval mode, no grad)."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(x))
        finally:
            self.train(was_training)

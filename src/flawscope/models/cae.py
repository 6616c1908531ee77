"""``cae``: the convolutional autoencoder of seed 000 (3D-printing layer defect detection).

Architecture as the seed gives it (Keras, ``padding='same'``): encoder Conv 5x5 with 32, 32, 16
filters, each with ReLU and 2x2 max-pooling; decoder Conv 5x5 with 16, 32, 32 filters, each with
ReLU and 2x2 up-sampling; final Conv 5x5 to C channels with sigmoid. Trained with MSE and Adam on
good images only; the input side must be a multiple of 8 (256x256x1 in the seed).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from flawscope.models.base import register
from flawscope.models.reconstruction import ReconstructionDetector


class CAEParams(BaseModel):
    """Hyperparameters of :class:`CAE` (defaults = seed 000)."""

    model_config = ConfigDict(extra="forbid")
    filters: tuple[int, int, int] = (32, 32, 16)
    kernel_size: int = Field(5, ge=1)


class CAE(nn.Module):
    """Seed-000 convolutional autoencoder: ``(N, C, H, W)`` -> ``(N, C, H, W)`` in ``[0, 1]``.

    H and W must be multiples of 8 (three 2x2 poolings). The bottleneck is
    ``(N, filters[2], H/8, W/8)``.
    """

    def __init__(
        self, channels: int = 1, filters: tuple[int, int, int] = (32, 32, 16), kernel_size: int = 5
    ):
        super().__init__()
        pad = kernel_size // 2
        f1, f2, f3 = filters

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size, padding=pad)

        self.encoder = nn.Sequential(
            conv(channels, f1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(f1, f2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(f2, f3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.decoder = nn.Sequential(
            conv(f3, f3),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv(f3, f2),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv(f2, f1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv(f1, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.decoder(self.encoder(x))


@register("cae")
class CAEDetector(ReconstructionDetector):
    """The seed-000 CAE behind the ``Detector`` interface (name ``cae``)."""

    Params = CAEParams
    size_multiple = 8

    def build_network(self) -> nn.Module:
        p = self.params
        return CAE(self.model_cfg.channels, tuple(p.filters), p.kernel_size)

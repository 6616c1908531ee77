"""3D-ST networks: local feature aggregation (LFA), residual blocks, teacher / student, decoder.

Source: Bergmann & Sattlegger, "Anomaly Detection in 3D Point Clouds using Deep Geometric
Descriptors", WACV 2023, Sec. 3 (LFA and residual blocks, after RandLA-Net -- Hu et al., CVPR
2020 -- with average instead of attentive pooling; the decoder of the teacher pretraining). Sizes
follow seed 004: d = 64, 4 residual blocks, k = 8 (paper: 32), decoder output m = 128 points.

Shapes: one cloud (or several concatenated, with their k-NN indices offset) enters as
``points`` ``(N, 3)`` float32 in normalised units (mean k-NN distance 1) and ``knn``
``(N, k)`` int64; descriptors leave as ``(N, d)`` float32. The networks only ever see
relative positions ``p_i - p_j``, so descriptors are invariant to translation.
"""

from __future__ import annotations

import torch
from torch import nn

#: LeakyReLU slopes: descriptor networks (RandLA-Net style) and decoder (paper, Sec. 3)
SLOPE = 0.2
DECODER_SLOPE = 0.05


class SharedMLP(nn.Sequential):
    """One linear layer applied to every point (or point-neighbour pair), then LeakyReLU."""

    def __init__(self, d_in: int, d_out: int, slope: float = SLOPE) -> None:
        super().__init__(nn.Linear(d_in, d_out), nn.LeakyReLU(slope))


def geometric_features(points: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
    """``G(p_i, p_j) = (p_i - p_j, |p_i - p_j|)`` for every point i and neighbour j.

    Args:
        points: ``(N, 3)`` float.
        knn: ``(N, k)`` int64 neighbour indices.

    Returns:
        ``(N, k, 4)`` float: relative position (3) and distance (1), in the units of ``points``.
    """
    rel = points[:, None, :] - points[knn]
    return torch.cat([rel, rel.norm(dim=2, keepdim=True)], dim=2)


class LocalFeatureAggregation(nn.Module):
    """LFA: ``f_i' = mean_j [MLP(G(p_i, p_j)) ; f_j]`` over the k neighbours j of point i.

    Args:
        d_in: input feature size; the output has ``2 * d_in`` channels (``d_in`` geometric,
            ``d_in`` neighbour features).
    """

    def __init__(self, d_in: int) -> None:
        super().__init__()
        self.geometry = SharedMLP(4, d_in)
        self.d_out = 2 * d_in

    def forward(self, features: torch.Tensor, geo: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
        """``(N, d_in)`` features, ``(N, k, 4)`` geometry, ``(N, k)`` knn -> ``(N, 2 d_in)``."""
        # mean_j [a_j ; b_j] = [mean_j a_j ; mean_j b_j]: no (N, k, 2 d_in) concatenation
        return torch.cat([self.geometry(geo).mean(dim=1), features[knn].mean(dim=1)], dim=1)


class ResidualBlock(nn.Module):
    """MLP d -> d/4, LFA -> d/2, LFA -> d, MLP d -> d, plus an MLP skip branch; LeakyReLU.

    Each block widens the receptive field by two k-NN hops (its two LFAs).

    Raises:
        ValueError: ``d`` not a positive multiple of 4.
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        if d < 4 or d % 4:
            raise ValueError(f"descriptor size must be a positive multiple of 4, got {d}")
        self.down = SharedMLP(d, d // 4)
        self.lfa1 = LocalFeatureAggregation(d // 4)
        self.lfa2 = LocalFeatureAggregation(d // 2)
        self.up = nn.Linear(d, d)
        self.skip = nn.Linear(d, d)
        self.act = nn.LeakyReLU(SLOPE)

    def forward(self, features: torch.Tensor, geo: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` -> ``(N, d)``."""
        x = self.lfa2(self.lfa1(self.down(features), geo, knn), geo, knn)
        return self.act(self.up(x) + self.skip(features))


class DescriptorNet(nn.Module):
    """Teacher or student: ``blocks`` residual blocks from all-zero input features.

    Args:
        d: descriptor size (multiple of 4; seed 004 and paper: 64).
        blocks: number of residual blocks (seed 004 and paper: 4); receptive field
            ``2 * blocks`` k-NN hops.
    """

    def __init__(self, d: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.d = d
        self.blocks = nn.ModuleList([ResidualBlock(d) for _ in range(blocks)])

    @property
    def hops(self) -> int:
        """k-NN hops of the receptive field (two LFAs per block)."""
        return 2 * len(self.blocks)

    def forward(self, points: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` float32 points, ``(N, k)`` int64 knn -> ``(N, d)`` float32 descriptors."""
        geo = geometric_features(points, knn)
        x = points.new_zeros(points.shape[0], self.d)
        for block in self.blocks:
            x = block(x, geo, knn)
        return x


class Decoder(nn.Module):
    """Descriptor -> ``m`` points: the receptive field relative to its centre (paper, Sec. 3).

    The descriptors first pass a BatchNorm (over the descriptors of one step). Not in the
    paper: without it the freshly initialised teacher's descriptors are a large constant plus
    a small point-dependent part, the decoder learned to output the same blob for every point
    and the teacher never left that state in our runs (chamfer flat at the blob's value for
    2,000 steps); with it the chamfer distance falls from the first epochs. The decoder is
    only used in pretraining, so teacher and students are unchanged.

    Args:
        d: descriptor size.
        m: output points per descriptor (seed 004: 128).
        hidden: width of the hidden layers.
        layers: number of hidden layers.
    """

    def __init__(self, d: int = 64, m: int = 128, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.m = m
        widths = [d] + [hidden] * layers
        body = [
            SharedMLP(a, b, DECODER_SLOPE) for a, b in zip(widths[:-1], widths[1:], strict=True)
        ]
        self.net = nn.Sequential(nn.BatchNorm1d(d), *body, nn.Linear(hidden, 3 * m))

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` float32, B >= 2 in training -> ``(B, m, 3)`` float32 offsets, normalised
        units."""
        return self.net(descriptors).view(-1, self.m, 3)

"""Training 3D-ST: teacher pretraining with a decoder, then students that regress the teacher.

Source: Bergmann & Sattlegger, "Anomaly Detection in 3D Point Clouds using Deep Geometric
Descriptors", WACV 2023, Sec. 3.

* Teacher pretraining (self-supervised, on synthetic scenes): per step, ``samples`` random
  points of one scene are picked; the decoder turns each one's teacher descriptor into ``m``
  points that should reproduce its receptive field (the points it reaches in ``hops`` k-NN
  hops, as offsets from the point); the loss is the mean chamfer distance. Only the union of
  the picked points' receptive fields is pushed through the teacher: their descriptors depend
  on nothing else (see :func:`receptive_subgraph`), which makes a step several times cheaper
  than the whole scene at the same result.
* Student training (on defect-free clouds): the student regresses the teacher descriptors,
  normalised per channel with the mean and standard deviation over the training clouds; loss =
  mean over points of the squared L2 error. The per-point anomaly score is the L2 norm of that
  error (mean over an ensemble of students).

Clouds enter as :class:`Prepared`: centred, divided by the scale ``s`` (mean k-NN distance)
and with their k-NN graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from flawscope.pointcloud.knn import chamfer_distance, knn_indices, receptive_fields
from flawscope.pointcloud.networks import Decoder, DescriptorNet
from flawscope.training.loop import fit_keeping_best

for _name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class Prepared:
    """A cloud ready for the networks.

    Attributes:
        points: ``(N, 3)`` float32, centred and divided by the scale (normalised units).
        knn: ``(N, k)`` int64 neighbour indices, self excluded.
    """

    points: np.ndarray
    knn: np.ndarray


def prepare(points: np.ndarray, scale: float, k: int) -> Prepared:
    """Centre ``(N, 3)`` points, divide by ``scale`` (> 0) and build the k-NN graph."""
    pts = np.asarray(points, dtype=np.float64)
    pts = ((pts - pts.mean(0)) / scale).astype(np.float32)
    return Prepared(pts, knn_indices(pts, k))


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- teacher


def receptive_subgraph(
    cloud: Prepared, centres: np.ndarray, hops: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The part of a cloud that the descriptors of ``centres`` depend on.

    A descriptor after ``hops`` neighbourhood aggregations depends only on points within
    ``hops`` k-NN hops. Restricted to the union ``U`` of those balls (neighbours outside ``U``
    re-pointed at the point itself), the network computes exactly the same descriptors at the
    centres: a point ``h`` hops away is needed only up to layer ``hops - h``, and its
    neighbours (``h + 1`` hops) are all in ``U`` while ``h < hops``.

    Args:
        cloud: the prepared cloud.
        centres: ``(S,)`` int point indices.
        hops: receptive-field depth (two per residual block).

    Returns:
        ``(sub_points (U, 3) float32, sub_knn (U, k) int64, centres_in_sub (S,) int64,
        fields)``: ``fields`` holds each centre's receptive field as indices into the cloud.
    """
    fields = receptive_fields(cloud.knn, centres, hops)
    union = np.unique(np.concatenate([np.asarray(centres, dtype=np.int64), *fields]))
    lookup = np.full(len(cloud.points), -1, dtype=np.int64)
    lookup[union] = np.arange(len(union))
    sub_knn = lookup[cloud.knn[union]]
    own = np.broadcast_to(np.arange(len(union))[:, None], sub_knn.shape)
    sub_knn = np.where(sub_knn < 0, own, sub_knn)
    return cloud.points[union], sub_knn, lookup[centres], fields


class SceneSteps(Dataset):
    """Teacher pretraining items: per scene, ``samples`` random centres and their fields.

    Each item is a dict of tensors: ``points`` ``(U, 3)`` and ``knn`` ``(U, k)`` (the
    ``hops``-hop subgraph the centres' descriptors depend on), ``centres`` ``(S,)`` (indices
    into ``points``), ``targets`` ``(S, R, 3)``: the points within ``field_hops`` k-NN hops of
    each centre as offsets from it (zero-padded to the largest, at most ``max_field`` random
    points of it), and ``mask`` ``(S, R)`` bool. With ``fixed=True`` every call for a scene
    returns the same centres (for validation).
    """

    def __init__(
        self,
        clouds: Sequence[Prepared],
        samples: int,
        hops: int,
        max_field: int,
        seed: int,
        fixed: bool = False,
        field_hops: int | None = None,
    ) -> None:
        self.clouds, self.samples, self.hops, self.max_field = clouds, samples, hops, max_field
        self.field_hops = hops if field_hops is None else min(field_hops, hops)
        self.seed, self.fixed = seed, fixed
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cloud = self.clouds[i]
        rng = np.random.default_rng((self.seed, i)) if self.fixed else self.rng
        n = len(cloud.points)
        centres = rng.choice(n, size=min(self.samples, n), replace=False)
        points, knn, local, fields = receptive_subgraph(cloud, centres, self.hops)
        if self.field_hops < self.hops:
            fields = receptive_fields(cloud.knn, centres, self.field_hops)
        size = max(1, min(self.max_field, max(len(f) for f in fields)))
        targets = np.zeros((len(centres), size, 3), dtype=np.float32)
        mask = np.zeros((len(centres), size), dtype=bool)
        for j, (c, field) in enumerate(zip(centres, fields, strict=True)):
            if len(field) > self.max_field:
                field = rng.choice(field, self.max_field, replace=False)
            if len(field) == 0:  # isolated point: its field is itself
                field = np.array([c])
            targets[j, : len(field)] = cloud.points[field] - cloud.points[c]
            mask[j, : len(field)] = True
        return {
            "points": torch.from_numpy(points),
            "knn": torch.from_numpy(knn),
            "centres": torch.from_numpy(local),
            "targets": torch.from_numpy(targets),
            "mask": torch.from_numpy(mask),
        }


class _CloudModule(L.LightningModule):
    """Shared Lightning steps: one cloud per step, ``loss(item)`` logged per epoch, Adam."""

    learning_rate: float
    weight_decay: float

    def loss(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, item: dict[str, torch.Tensor], idx: int) -> torch.Tensor:
        loss = self.loss(item)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def validation_step(self, item: dict[str, torch.Tensor], idx: int) -> torch.Tensor:
        loss = self.loss(item)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )


class TeacherModule(_CloudModule):
    """Teacher + decoder trained with the chamfer distance of reconstructed receptive fields.

    Optimiser: Adam (``learning_rate``, ``weight_decay``).
    """

    def __init__(
        self,
        teacher: DescriptorNet,
        decoder: Decoder,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
    ) -> None:
        super().__init__()
        self.teacher, self.decoder = teacher, decoder
        self.learning_rate, self.weight_decay = learning_rate, weight_decay

    def loss(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean chamfer distance (normalised units) between decoded and true fields."""
        desc = self.teacher(item["points"], item["knn"])[item["centres"]]
        return chamfer_distance(self.decoder(desc), item["targets"], item["mask"]).mean()


# --------------------------------------------------------------------------- student


@torch.no_grad()
def descriptors(net: DescriptorNet, cloud: Prepared) -> torch.Tensor:
    """``(N, d)`` float32 descriptors of one prepared cloud (no gradient, eval mode)."""
    net.eval()
    return net(torch.from_numpy(cloud.points), torch.from_numpy(cloud.knn))


class StudentClouds(Dataset):
    """Student items: ``points``, ``knn`` and the normalised teacher ``targets`` ``(N, d)``."""

    def __init__(self, clouds: Sequence[Prepared], targets: Sequence[torch.Tensor]) -> None:
        self.clouds, self.targets = clouds, targets

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.clouds[i]
        return {
            "points": torch.from_numpy(c.points),
            "knn": torch.from_numpy(c.knn),
            "targets": self.targets[i],
        }


class StudentModule(_CloudModule):
    """A student regressing normalised teacher descriptors; loss = mean squared L2 error."""

    def __init__(
        self, student: DescriptorNet, learning_rate: float = 1e-3, weight_decay: float = 1e-5
    ) -> None:
        super().__init__()
        self.student = student
        self.learning_rate, self.weight_decay = learning_rate, weight_decay

    def loss(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean over points of ``|S(p) - (T(p) - mu) / sigma|^2``."""
        pred = self.student(item["points"], item["knn"])
        return (pred - item["targets"]).pow(2).sum(1).mean()


# --------------------------------------------------------------------------- loop


def train_module(
    module: L.LightningModule,
    train: Dataset,
    val: Dataset,
    epochs: int,
    seed: int,
    progress: bool = False,
) -> tuple[list[float], list[float]]:
    """Train with Lightning on the CPU, one cloud per step; keep the weights of the best epoch.

    Args:
        module: :class:`TeacherModule` or :class:`StudentModule`.
        train, val: datasets of one-cloud items (no batching).
        epochs: passes over ``train``, >= 1.
        seed: seeds torch and the shuffling.
        progress: show Lightning's progress bar.

    Returns:
        ``(train losses, validation losses)`` per epoch. On return ``module`` holds the weights
        of the epoch with the lowest validation loss, in eval mode on the CPU.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    generator = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(train, batch_size=None, shuffle=True, generator=generator)
    val_dl = DataLoader(val, batch_size=None)
    history = fit_keeping_best(
        module,
        train_dl,
        val_dl,
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=progress,
    )
    return history["train_loss"], history["val_loss"]

"""3D-ST networks: shapes, translation invariance; a few training steps lower both losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flawscope.pointcloud.knn import knn_indices, mean_knn_distance
from flawscope.pointcloud.networks import (
    Decoder,
    DescriptorNet,
    LocalFeatureAggregation,
    ResidualBlock,
    geometric_features,
)
from flawscope.pointcloud.scenes import scene_clouds
from flawscope.pointcloud.training import (
    SceneSteps,
    StudentClouds,
    StudentModule,
    TeacherModule,
    descriptors,
    prepare,
    torch_threads,
    train_module,
)


def cloud(n: int = 200, k: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    pts = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return torch.from_numpy(pts), torch.from_numpy(knn_indices(pts, k))


def test_shapes() -> None:
    pts, knn = cloud()
    geo = geometric_features(pts, knn)
    assert geo.shape == (200, 6, 4)
    torch.testing.assert_close(geo[..., 3], geo[..., :3].norm(dim=2))
    assert LocalFeatureAggregation(8)(torch.randn(200, 8), geo, knn).shape == (200, 16)
    assert ResidualBlock(32)(torch.randn(200, 32), geo, knn).shape == (200, 32)
    net = DescriptorNet(32, 3)
    assert net(pts, knn).shape == (200, 32) and net.hops == 6
    assert Decoder(32, 10).eval()(torch.randn(4, 32)).shape == (4, 10, 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        ResidualBlock(30)


def test_descriptors_are_translation_invariant_not_rotation_invariant() -> None:
    pts, knn = cloud()
    net = DescriptorNet(16, 2).eval()
    with torch.no_grad():
        base = net(pts, knn)
        moved = net(pts + torch.tensor([5.0, -3.0, 100.0]), knn)
        turned = net(pts @ torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), knn)
    torch.testing.assert_close(moved, base, rtol=1e-4, atol=1e-4)
    assert (turned - base).abs().max() > 1e-3


def test_student_depends_on_geometry() -> None:
    pts, knn = cloud()
    net = DescriptorNet(16, 2).eval()
    with torch.no_grad():
        a = net(pts, knn)
        b = net(pts * 1.5, knn)
    assert (a - b).abs().max() > 1e-3


def _mean_loss(module, data) -> float:
    module.eval()
    with torch.no_grad():
        return float(np.mean([module.loss(data[i]).item() for i in range(len(data))]))


def test_training_steps_lower_teacher_and_student_losses() -> None:
    with torch_threads(1):  # tiny tensors: one thread avoids waiting for a busy second core
        _train_both()


def _train_both() -> None:
    torch.manual_seed(0)
    k, hops = 6, 4
    scenes = scene_clouds(4, 500, n_objects=3, seed=0)
    scale = float(np.mean([mean_knn_distance(c.points, k) for c in scenes]))
    prep = [prepare(c.points, scale, k) for c in scenes]
    fixed = SceneSteps(prep, 8, hops, 64, seed=1, fixed=True, field_hops=2)
    teacher, decoder = DescriptorNet(16, 2), Decoder(16, 16, 32)
    module = TeacherModule(teacher, decoder, learning_rate=3e-3)
    before = _mean_loss(module, fixed)
    train_losses, val_losses = train_module(
        module, SceneSteps(prep, 8, hops, 64, seed=0, field_hops=2), fixed, 6, seed=0
    )
    assert len(train_losses) == 6 and len(val_losses) == 6
    assert _mean_loss(module, fixed) < 0.9 * before

    targets = [descriptors(teacher, p) for p in prep]
    mean, std = torch.cat(targets).mean(0), torch.cat(targets).std(0) + 1e-6
    data = StudentClouds(prep, [(t - mean) / std for t in targets])
    student = StudentModule(DescriptorNet(16, 2), learning_rate=3e-3)
    before = _mean_loss(student, data)
    train_module(student, data, data, 20, seed=0)
    assert _mean_loss(student, data) < 0.8 * before

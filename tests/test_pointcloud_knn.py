"""k-NN graph, receptive fields and chamfer distance against brute force; exact subgraphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flawscope.errors import ConfigError, DataError
from flawscope.pointcloud.knn import (
    chamfer_distance,
    knn_indices,
    mean_knn_distance,
    receptive_fields,
)
from flawscope.pointcloud.networks import DescriptorNet
from flawscope.pointcloud.training import Prepared, receptive_subgraph


def brute_knn(points: np.ndarray, k: int) -> np.ndarray:
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k]


def test_knn_matches_brute_force() -> None:
    pts = np.random.default_rng(0).normal(size=(300, 3))
    idx = knn_indices(pts, 7)
    assert idx.shape == (300, 7) and idx.dtype == np.int64
    assert not (idx == np.arange(300)[:, None]).any()  # self excluded
    dist = np.linalg.norm(pts[idx] - pts[:, None], axis=2)
    np.testing.assert_allclose(dist, brute_knn(pts, 7), rtol=1e-12)
    assert mean_knn_distance(pts, 7) == pytest.approx(brute_knn(pts, 7).mean())


def test_knn_with_duplicate_points_excludes_only_self() -> None:
    pts = np.zeros((5, 3))
    pts[1] = pts[0]  # duplicate of point 0
    pts[2:, 0] = [1.0, 2.0, 3.0]
    idx = knn_indices(pts, 2)
    assert 1 in idx[0] and 0 in idx[1]
    assert not (idx == np.arange(5)[:, None]).any()


def test_knn_bad_input() -> None:
    with pytest.raises(DataError, match="fewer than k"):
        knn_indices(np.zeros((3, 3)), 5)
    with pytest.raises(ConfigError):
        knn_indices(np.zeros((10, 3)), 0)
    with pytest.raises(DataError, match="coincide"):
        mean_knn_distance(np.zeros((10, 3)), 3)


def brute_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None] - b[None], axis=2)
    return float(d.min(1).mean() + d.min(0).mean())


def test_chamfer_matches_brute_force_with_padding_and_chunks() -> None:
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(3, 20, 3))
    sizes = [50, 7, 33]
    target = np.zeros((3, 50, 3))
    mask = np.zeros((3, 50), dtype=bool)
    for i, n in enumerate(sizes):
        target[i, :n] = rng.normal(size=(n, 3)) + 1
        target[i, n:] = 99.0  # padding far away must not count
        mask[i, :n] = True
    got = chamfer_distance(
        torch.tensor(pred), torch.tensor(target), torch.tensor(mask), chunk=8
    ).numpy()
    want = [brute_chamfer(pred[i], target[i, :n]) for i, n in enumerate(sizes)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert chamfer_distance(torch.tensor(pred), torch.tensor(pred)).abs().max() < 1e-12


def test_chamfer_is_differentiable_and_checks_shapes() -> None:
    pred = torch.randn(2, 5, 3, requires_grad=True)
    chamfer_distance(pred, torch.randn(2, 9, 3)).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    with pytest.raises(DataError):
        chamfer_distance(torch.randn(5, 3), torch.randn(2, 9, 3))
    with pytest.raises(DataError, match="empty"):
        chamfer_distance(torch.randn(1, 5, 3), torch.randn(1, 4, 3), torch.zeros(1, 4).bool())


def brute_fields(knn: np.ndarray, centre: int, hops: int) -> set[int]:
    reached, frontier = {centre}, {centre}
    for _ in range(hops):
        frontier = {int(j) for i in frontier for j in knn[i]} - reached
        reached |= frontier
    return reached - {centre}


def test_receptive_fields_match_breadth_first_search() -> None:
    pts = np.random.default_rng(2).uniform(size=(400, 3))
    knn = knn_indices(pts, 4)
    centres = np.array([0, 17, 399])
    for hops in (1, 2, 3):
        for c, field in zip(centres, receptive_fields(knn, centres, hops), strict=True):
            assert set(field.tolist()) == brute_fields(knn, int(c), hops)


def test_receptive_subgraph_gives_exact_descriptors() -> None:
    """The teacher on the union of receptive fields = the teacher on the whole cloud."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(size=(600, 3)).astype(np.float32) * 10
    knn = knn_indices(pts, 5)
    net = DescriptorNet(16, 2).eval()
    centres = rng.choice(600, 6, replace=False)
    sub_pts, sub_knn, local, _ = receptive_subgraph(Prepared(pts, knn), centres, net.hops)
    assert len(sub_pts) < len(pts)  # the trick saves work
    with torch.no_grad():
        full = net(torch.from_numpy(pts), torch.from_numpy(knn))[centres]
        part = net(torch.from_numpy(sub_pts), torch.from_numpy(sub_knn))[local]
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-6)
    # one hop too few is not exact: the test can fail
    sub_pts, sub_knn, local, _ = receptive_subgraph(Prepared(pts, knn), centres, net.hops - 1)
    with torch.no_grad():
        short = net(torch.from_numpy(sub_pts), torch.from_numpy(sub_knn))[local]
    assert (short - full).abs().max() > 1e-4

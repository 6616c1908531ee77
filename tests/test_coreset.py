"""Greedy coreset subsampling and chunked nearest-neighbour search (models/coreset.py)."""

from __future__ import annotations

import pytest
import torch

from flawscope.models.coreset import coreset_size, greedy_coreset, nearest_neighbours


def _coverage_radius(points: torch.Tensor, index: torch.Tensor) -> float:
    """Largest distance of any point to its nearest selected point."""
    return float(torch.cdist(points, points[index]).min(dim=1).values.max())


def test_coreset_size_rounding() -> None:
    assert coreset_size(30, 0.1) == 3  # not 4: 0.1 * 30 is 3.0000000000000004 in floats
    assert coreset_size(31, 0.1) == 4  # ceil
    assert coreset_size(5, 0.01) == 1  # at least one
    assert coreset_size(100, 1.0) == 100
    assert coreset_size(100, 0.5, max_size=10) == 10
    with pytest.raises(ValueError):
        coreset_size(10, 0.0)
    with pytest.raises(ValueError):
        coreset_size(0, 0.5)


@pytest.mark.parametrize("projection_dim", [None, 4])
def test_selection_is_a_subset_without_duplicates(projection_dim: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    n = coreset_size(len(x), 0.1)
    index = greedy_coreset(x, n, projection_dim, torch.Generator().manual_seed(1))
    assert index.dtype == torch.long and index.shape == (20,)
    assert len(set(index.tolist())) == 20
    assert int(index.min()) >= 0 and int(index.max()) < 200


def test_duplicate_points_are_never_selected_twice() -> None:
    x = torch.zeros(10, 3)
    x[:2] = torch.tensor([[1.0, 0, 0], [2.0, 0, 0]])  # 8 identical points at the origin
    index = greedy_coreset(x, 6, None, start=0)
    assert len(set(index.tolist())) == 6


def test_first_selections_follow_farthest_point_order() -> None:
    # points on a line at x = 0, 1, 2, 4, 7, 15, 16 (index 0..6), starting from x = 0:
    # farthest is 16 (6); then 7 (4, distance 7); then 4 (3, distance 3); then 2 (2, distance 2)
    xs = torch.tensor([0.0, 1, 2, 4, 7, 15, 16])
    points = torch.stack([xs, torch.zeros_like(xs)], dim=1)
    index = greedy_coreset(points, 5, projection_dim=None, start=0)
    assert index.tolist() == [0, 6, 4, 3, 2]


def test_ratio_one_keeps_all() -> None:
    x = torch.randn(17, 4)
    n = coreset_size(len(x), 1.0)
    assert greedy_coreset(x, n, 2).tolist() == list(range(17))


def test_greedy_covers_clustered_data_better_than_random() -> None:
    g = torch.Generator().manual_seed(3)
    dense = torch.randn(400, 2, generator=g) * 0.5
    centres = torch.tensor([[20.0, 0], [-20, 0], [0, 20], [0, -20]])
    sparse = (centres[:, None] + torch.randn(4, 5, 2, generator=g) * 0.5).reshape(-1, 2)
    points = torch.cat([dense, sparse])
    n = 12
    greedy = greedy_coreset(points, n, None, torch.Generator().manual_seed(0))
    random = torch.randperm(len(points), generator=g)[:n]
    assert _coverage_radius(points, greedy) < _coverage_radius(points, random)
    assert _coverage_radius(points, greedy) < 3.0  # every far cluster got a centre


def test_projection_keeps_the_selection_good() -> None:
    g = torch.Generator().manual_seed(4)
    points = torch.randn(300, 64, generator=g)
    points[:10] += 30.0  # a far cluster
    index = greedy_coreset(points, 5, projection_dim=16, generator=g)
    assert any(int(i) < 10 for i in index)


@pytest.mark.parametrize("chunks", [(1, 1), (7, 5), (16, 3), (1000, 1000)])
@pytest.mark.parametrize("k", [1, 4])
def test_chunked_search_equals_brute_force(chunks: tuple[int, int], k: int) -> None:
    g = torch.Generator().manual_seed(5)
    queries, bank = torch.randn(37, 6, generator=g), torch.randn(53, 6, generator=g)
    dist, index = nearest_neighbours(queries, bank, k, *chunks)
    full = torch.cdist(queries, bank)
    want_d, want_i = torch.topk(full, k, dim=1, largest=False)
    assert dist.shape == index.shape == (37, k)
    torch.testing.assert_close(dist, want_d, rtol=1e-5, atol=1e-5)
    assert torch.equal(index, want_i)


def test_nearest_neighbour_argument_errors() -> None:
    with pytest.raises(ValueError):
        nearest_neighbours(torch.randn(3, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError):
        nearest_neighbours(torch.randn(3, 2), torch.randn(4, 3))
    with pytest.raises(ValueError):
        nearest_neighbours(torch.randn(3, 2), torch.randn(4, 2), k=5)

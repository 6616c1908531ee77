"""Image groups: k-means on backbone embeddings, k by the silhouette, assignment and far flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.grouping import GroupModel, image_embeddings

CENTRES = 10.0 * np.eye(3, 16)  # three blob centres 10 * sqrt(2) apart in 16-D


def blobs(n_per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated unit-variance Gaussian blobs in 16-D, shuffled; (x, blob labels)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(3), n_per))
    x = CENTRES[labels] + rng.normal(size=(len(labels), 16))
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def fitted() -> tuple[GroupModel, np.ndarray, np.ndarray]:
    x, labels = blobs()
    return GroupModel.fit(x), x, labels


def test_silhouette_picks_three_blobs(fitted: tuple) -> None:
    model, x, labels = fitted
    assert model.k == 3 and model.names == ["g0", "g1", "g2"]
    assert set(model.silhouette) == set(range(2, 9))
    assert max(model.silhouette, key=model.silhouette.get) == 3
    assert model.centroids.shape == (3, 16) and model.centroids.dtype == np.float32
    assert model.radius.shape == (3,) and (model.radius > 0).all()
    assert sorted(model.sizes) == [30, 30, 30]
    got = model.assign(x)
    assert adjusted_rand_score(labels, got.index) == 1.0
    assert got.groups[0] == "g0"  # groups are numbered by their first training image
    assert not got.far.any()
    assert got.distances.dtype == np.float32 and got.far.dtype == bool


def test_far_points_are_flagged(fitted: tuple) -> None:
    model, _, _ = fitted
    new, _ = blobs(n_per=10, seed=1)
    far_point = np.full((1, 16), -8.0, dtype=np.float32)
    got = model.assign(np.concatenate([new, far_point]))
    assert not got.far[:-1].any() and got.far[-1]
    assert len(got.groups) == 31 and got.distances.shape == (31,)


def test_deterministic_for_a_seed() -> None:
    x, _ = blobs()
    a, b = GroupModel.fit(x, seed=5), GroupModel.fit(x, seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.silhouette == b.silhouette


def test_tensor_round_trip(fitted: tuple, tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    model, x, _ = fitted
    save_file(model.to_tensors(), str(tmp_path / "g.safetensors"))
    back = GroupModel.from_tensors(load_file(str(tmp_path / "g.safetensors")))
    probe = np.concatenate([x, np.full((1, 16), -8.0, dtype=np.float32)])
    a, b = model.assign(probe), back.assign(probe)
    assert a.groups == b.groups
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.far, b.far)
    assert back.describe() == model.describe() | {"reason": back.reason}
    torch_tensors = {k: torch.from_numpy(v) for k, v in model.to_tensors().items()}
    assert GroupModel.from_tensors(torch_tensors).assign(probe).groups == a.groups


def test_describe_is_json(fitted: tuple) -> None:
    info = json.loads(json.dumps(fitted[0].describe()))
    assert info["k"] == 3 and sum(info["sizes"].values()) == 90
    assert set(info["silhouette"]) == {str(k) for k in range(2, 9)}
    assert info["far_factor"] == 2.0


def test_unstructured_data_is_one_group() -> None:
    x = np.random.default_rng(0).normal(size=(60, 16))
    model = GroupModel.fit(x)
    assert model.k == 1 and model.sizes == [60]
    assert max(model.silhouette.values()) < 0.1 and "one group" in model.reason
    assert model.assign(x).groups == ["g0"] * 60


def test_given_k_and_small_inputs() -> None:
    x, labels = blobs(n_per=5)
    model = GroupModel.fit(x, k=3)
    assert model.silhouette == {} and adjusted_rand_score(labels, model.assign(x).index) == 1.0
    two = GroupModel.fit(x[:2])  # no k can be scored with 2 images: one group
    assert two.k == 1 and two.silhouette == {}
    dup = GroupModel.fit(np.repeat(x[:1], 4, axis=0), k=2)  # identical images: one cluster left
    assert dup.k == 1 and dup.radius[0] > 0
    empty = model.assign(np.zeros((0, 16)))
    assert empty.groups == [] and empty.far.shape == (0,)


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "error"),
    [
        (np.zeros((1, 4)), {}, DataError),
        (np.zeros(4), {}, DataError),
        (np.full((3, 4), np.nan), {}, DataError),
        (np.zeros((5, 4)), {"k": 0}, ConfigError),
        (np.zeros((5, 4)), {"k": 6}, ConfigError),
        (np.zeros((5, 4)), {"k_max": 1}, ConfigError),
        (np.zeros((5, 4)), {"far_factor": 0.0}, ConfigError),
    ],
)
def test_fit_errors(embeddings: np.ndarray, kwargs: dict, error: type) -> None:
    with pytest.raises(error) as info:
        GroupModel.fit(embeddings, **kwargs)
    assert " -- " in str(info.value) and "\n" not in str(info.value)


def test_assign_and_load_errors(fitted: tuple) -> None:
    model = fitted[0]
    with pytest.raises(DataError, match="16"):
        model.assign(np.zeros((2, 8)))
    tensors = model.to_tensors()
    with pytest.raises(ModelDirError, match="radius"):
        GroupModel.from_tensors({k: v for k, v in tensors.items() if k != "radius"})
    with pytest.raises(ModelDirError):
        GroupModel.from_tensors(tensors | {"radius": np.ones(2, dtype=np.float32)})


def two_families(n: int = 6, size: int = 64) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` horizontal-stripe and ``n`` soft-blob grey images, (2n, 1, size, size) in [0, 1]."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = []
    for i in range(n):
        period = 6 + 2 * i
        images.append(0.5 + 0.4 * np.sign(np.sin(2 * np.pi * (yy + rng.uniform(0, 8)) / period)))
    for _ in range(n):
        img = np.full((size, size), 0.3)
        for cy, cx in rng.uniform(8, size - 8, size=(4, 2)):
            img += 0.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2))
        images.append(np.clip(img, 0, 1))
    x = torch.from_numpy(np.stack(images)[:, None].astype(np.float32))
    return x, np.repeat([0, 1], n)


def test_image_embeddings_separate_two_families() -> None:
    grey, labels = two_families()
    tint = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    for images in (grey, grey * tint):  # grey (fed as 3 equal channels) and RGB inputs
        emb = image_embeddings(images, batch_size=4)
        assert emb.shape == (12, 432) and emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        model = GroupModel.fit(emb)
        assert model.k == 2, model.silhouette
        assert adjusted_rand_score(labels, model.assign(emb).index) == 1.0
    np.testing.assert_allclose(
        image_embeddings(grey[:2]), image_embeddings(grey[:2].expand(-1, 3, -1, -1)), atol=1e-5
    )
    assert image_embeddings(grey[:0]).shape == (0, 432)
    with pytest.raises(DataError):
        image_embeddings(torch.zeros(2, 2, 32, 32))
    with pytest.raises(ConfigError):
        image_embeddings(grey, batch_size=0)

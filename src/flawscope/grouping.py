"""Discover groups of good images by clustering, and assign new images to them.

In a factory the good images often fall into visual groups (camera view angles, families of
similar 3D-printed layers, lighting set-ups) that each need their own threshold. When the user has
no group labels, flawscope finds them:

1. :func:`image_embeddings` describes every image by one vector: the global-average-pooled
   features of the deep stages (strides 16 and 32) of the pretrained backbone
   (:mod:`flawscope.models.backbone`), L2-normalised. Deep, pooled features describe the
   appearance of the whole image (texture, layout, exposure) and ignore where small details lie.
2. :meth:`GroupModel.fit` clusters the good training images into k groups with k-means (Lloyd's
   algorithm with k-means++ seeding, Arthur & Vassilvitskii 2007, via
   :class:`sklearn.cluster.KMeans`). When k is not given it is chosen by the mean silhouette
   coefficient (Rousseeuw, "Silhouettes: a graphical aid to the interpretation and validation of
   cluster analysis", J. Comput. Appl. Math. 20, 1987) over k = 2 .. k_max; when even the best
   silhouette is below ``min_silhouette`` (default 0.1) there is no real cluster structure and
   all images form one group.
3. :meth:`GroupModel.assign` puts every new image in the group of its nearest centroid and flags
   it as *far* when that distance exceeds ``far_factor`` times the group's radius (the 95th
   percentile distance of the group's training members to its centroid): such an image looks
   like none of the training groups, so no group threshold is trustworthy for it.

The silhouette cannot tell one group from several (it is undefined for k = 1); the
``min_silhouette`` rule is the usual work-around. In low dimensions a single blob can score above
0.1 (a 2-D Gaussian scores about 0.35); the backbone embeddings have hundreds of dimensions, where
an unstructured set scores well below 0.1.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.features import CPU_MICRO_BATCH, BackboneParams, make_extractor

log = logging.getLogger("flawscope")

#: the backbone stages pooled into an image embedding (ends of the stride-16 and -32 levels;
#: 112 + 320 = 432 channels for EfficientNet-Lite0)
EMBEDDING_LAYERS: tuple[str, ...] = ("stride16", "stride32")
DEFAULT_BACKBONE: str = BackboneParams.model_fields["backbone"].default
#: silhouette below which the images are taken to have no cluster structure (one group)
MIN_SILHOUETTE = 0.1
#: percentile of the members' distances to their centroid that defines a group's radius
RADIUS_PERCENTILE = 95.0
#: k-means restarts (k-means++ seeds); the best of them by inertia is kept
N_INIT = 10
#: above this many embeddings the silhouette is computed on a seeded random sample of this size
SILHOUETTE_SAMPLE = 2000

_extractors: dict[tuple[str, str], nn.Module] = {}
_extractors_lock = threading.Lock()


def _extractor(backbone: str, device: torch.device) -> nn.Module:
    """The cached frozen extractor of :data:`EMBEDDING_LAYERS` for ``backbone`` on ``device``."""
    key = (backbone, str(device))
    with _extractors_lock:
        if key not in _extractors:
            params = BackboneParams(backbone=backbone, layers=EMBEDDING_LAYERS)
            _extractors[key] = make_extractor(params).to(device).eval()
        return _extractors[key]


def embedding_dim(backbone: str = DEFAULT_BACKBONE) -> int:
    """D of :func:`image_embeddings` for ``backbone`` (432 for EfficientNet-Lite0)."""
    return int(sum(_extractor(backbone, torch.device("cpu")).channels))


@torch.no_grad()
def image_embeddings(
    images: torch.Tensor,
    batch_size: int = 16,
    backbone: str = DEFAULT_BACKBONE,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """One appearance vector per image from the pretrained backbone.

    Each of the stages :data:`EMBEDDING_LAYERS` (stride 16 and 32) is global-average-pooled over
    its spatial positions and L2-normalised on its own (so both stages weigh the same, whatever
    their channel counts); the two are concatenated and the result L2-normalised again. Euclidean
    distances between embeddings thus lie in ``[0, 2]`` and are a monotone function of their
    cosine similarity. The extractor is built once per (backbone, device) and cached; it is
    frozen and runs in eval mode under ``torch.no_grad``.

    Args:
        images: ``(N, C, H, W)`` float tensor in ``[0, 1]``, C = 1 (grey, fed as three equal
            channels) or 3 (RGB); any H, W >= 1 (32 px or more gives meaningful stride-32
            features). N = 0 gives a ``(0, D)`` array.
        batch_size: images per forward pass (>= 1); on a CPU each pass is further split into
            micro-batches of :data:`~flawscope.models.features.CPU_MICRO_BATCH` (faster there).
        backbone: a backbone name of :data:`flawscope.models.backbone.BACKBONES` with packaged
            weights; default that of :class:`~flawscope.models.features.BackboneParams`.
        device: where the backbone runs (``"cpu"`` or ``"cuda"``); the result is on the CPU.

    Returns:
        ``(N, D)`` float32 NumPy array of unit-norm rows; D = 432 for EfficientNet-Lite0.

    Raises:
        ConfigError: ``batch_size < 1``; unknown backbone or its weights are not installed.
        DataError: ``images`` is not a 4-D floating-point tensor with 1 or 3 channels.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"batch_size must be a positive integer, got {batch_size!r}", "pass e.g. 16"
        )
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"images must be a (N, 1 or 3, H, W) tensor, got {shape}",
            "stack grey or RGB images into one float batch tensor in [0, 1]",
        )
    if not images.is_floating_point():
        raise DataError(
            f"images must be floating point in [0, 1], got dtype {images.dtype}",
            "convert them with images.float() / 255",
        )
    dev = torch.device(device)
    extractor = _extractor(backbone, dev)
    if len(images) == 0:
        return np.zeros((0, int(sum(extractor.channels))), dtype=np.float32)
    micro = batch_size if dev.type == "cuda" else min(batch_size, CPU_MICRO_BATCH)
    out = []
    for i in range(0, len(images), micro):
        batch = images[i : i + micro].to(dev, torch.float32)
        stages = extractor(batch)
        pooled = [F.normalize(s.float().mean(dim=(2, 3)), dim=1) for s in stages]
        out.append(F.normalize(torch.cat(pooled, dim=1), dim=1).cpu())
    return torch.cat(out).numpy().astype(np.float32)


@dataclass
class Assignment:
    """Groups of a batch of embeddings (:meth:`GroupModel.assign`).

    Attributes:
        groups: ``N`` group names (``"g0"``, ...), the group of the nearest centroid.
        distances: ``(N,)`` float32 >= 0, Euclidean distance to that centroid.
        far: ``(N,)`` bool, ``distance > far_factor * radius`` of that group: the image looks
            like none of the training groups.
        index: ``(N,)`` int64, the group's position in :attr:`GroupModel.names`.
    """

    groups: list[str]
    distances: np.ndarray
    far: np.ndarray
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _as_embeddings(embeddings: object, what: str, allow_empty: bool = False) -> np.ndarray:
    """``embeddings`` as a finite ``(N, D)`` float64 array, else :class:`DataError`."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    arr = np.asarray(embeddings)
    if arr.ndim != 2 or arr.shape[1] < 1 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(
            f"{what} embeddings must be a numeric (N, D) array, got shape {arr.shape} "
            f"and dtype {arr.dtype}",
            "pass the output of image_embeddings(images)",
        )
    if len(arr) == 0 and not allow_empty:
        raise DataError(f"no {what} embeddings were given", "pass at least 2 good images")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(
            f"{what} embeddings contain NaN or infinite values",
            "check the images (NaN pixels?) and pass finite embeddings",
        )
    return arr


def _distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(N, D)``, ``(k, D)`` -> ``(N, k)`` float64 Euclidean distances."""
    sq = (x * x).sum(1)[:, None] - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)[None]
    return np.sqrt(np.maximum(sq, 0.0))


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ / Lloyd centroids ``(k, D)`` float64, best of :data:`N_INIT` seeded runs."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # k larger than the number of distinct points: some clusters coincide; handled by callers
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, init="k-means++", n_init=N_INIT, random_state=seed).fit(x)
    return np.asarray(km.cluster_centers_, dtype=np.float64)


def _silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    """Mean silhouette coefficient, None when undefined (fewer than 2 or N distinct labels)."""
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(x) - 1:
        return None
    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(x, labels, sample_size=sample, random_state=seed))


def _int_option(value: object, name: str, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}", fix)
    return int(value)


class GroupModel:
    """k-means groups of good images on backbone embeddings.

    Lloyd / k-means++ via scikit-learn; k by the mean silhouette coefficient (Rousseeuw 1987).
    Build with :meth:`fit` or :meth:`from_tensors`.

    Attributes:
        names: ``"g0"``, ``"g1"``, ... in cluster order; clusters are numbered by the first
            training image that belongs to them (g0 holds the first training image), which makes
            the names independent of k-means' internal label order.
        centroids: ``(k, D)`` float32 k-means cluster centres; every training image is in the
            group of its nearest centre.
        radius: ``(k,)`` float32 > 0, the 95th percentile distance of the cluster's training
            members to its centroid. A cluster whose members all coincide with the centroid
            (e.g. one member) gets the median radius of the other clusters (or 1e-6 if none
            has a positive one), so that not every new image is far from it.
        sizes: training members per cluster.
        far_factor: an image is far when its distance to the nearest centroid exceeds
            ``far_factor`` times that group's radius.
        silhouette: mean silhouette per tried k (empty when k was given).
        min_silhouette: the silhouette below which one group was used.
        reason: how k was chosen, one line (for logs and reports).
    """

    def __init__(
        self,
        centroids: np.ndarray,
        radius: np.ndarray,
        sizes: list[int],
        far_factor: float = 2.0,
        silhouette: Mapping[int, float] | None = None,
        min_silhouette: float = MIN_SILHOUETTE,
        reason: str = "",
    ) -> None:
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.radius = np.asarray(radius, dtype=np.float32)
        self.sizes = [int(s) for s in sizes]
        self.far_factor = float(far_factor)
        self.silhouette = {int(k): float(v) for k, v in (silhouette or {}).items()}
        self.min_silhouette = float(min_silhouette)
        self.reason = reason
        self.names = [f"g{i}" for i in range(len(self.centroids))]

    @property
    def k(self) -> int:
        """Number of groups."""
        return len(self.centroids)

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        k: int | None = None,
        k_max: int = 8,
        far_factor: float = 2.0,
        seed: int = 0,
        min_silhouette: float = MIN_SILHOUETTE,
    ) -> GroupModel:
        """Cluster the embeddings of good images into groups.

        With ``k=None`` every k = 2 .. min(k_max, N - 1) is clustered and scored by the mean
        silhouette coefficient (exact up to :data:`SILHOUETTE_SAMPLE` embeddings, else on a
        seeded sample); the best k wins (the smallest on ties). If the best silhouette is below
        ``min_silhouette``, or no k can be tried (N = 2), all images form one group. Each k-means
        run keeps the best of :data:`N_INIT` k-means++ starts seeded with ``seed``, so the result
        is deterministic for a given seed.

        Args:
            embeddings: ``(N, D)`` finite floats, N >= 2 (rows of :func:`image_embeddings`).
            k: number of groups, 1 <= k <= N; None chooses it by the silhouette.
            k_max: largest k tried when k is None, >= 2.
            far_factor: > 0; see :meth:`assign`.
            seed: seed of the k-means++ initialisations (and the silhouette sample).
            min_silhouette: silhouette under which the data count as unstructured, in [-1, 1].

        Returns:
            The fitted model.

        Raises:
            DataError: not a finite (N, D) array, or fewer than 2 embeddings.
            ConfigError: k < 1, k > N, k_max < 2, far_factor <= 0, min_silhouette outside
                [-1, 1].
        """
        x = _as_embeddings(embeddings, "training")
        n = len(x)
        if n < 2:
            raise DataError(
                f"grouping needs at least 2 good images, got {n}",
                "add good training images, or do not ask for image groups",
            )
        if k is not None:
            k = _int_option(k, "k (number of groups)", 1, "pass k >= 1, or k=None to choose it")
            if k > n:
                raise ConfigError(
                    f"k = {k} groups is more than the {n} training images",
                    f"pass k <= {n}, or k=None to choose it by the silhouette",
                )
        k_max = _int_option(k_max, "k_max", 2, "pass k_max >= 2, or a fixed k")
        if not (isinstance(far_factor, (int, float)) and far_factor > 0):
            raise ConfigError(f"far_factor must be > 0, got {far_factor!r}", "pass e.g. 2.0")
        if not (isinstance(min_silhouette, (int, float)) and -1 <= min_silhouette <= 1):
            raise ConfigError(
                f"min_silhouette must lie in [-1, 1], got {min_silhouette!r}", "pass e.g. 0.1"
            )

        silhouette: dict[int, float] = {}
        if k is not None:
            chosen, centroids = k, _kmeans(x, k, seed)
            reason = f"k = {k} given"
        else:
            fits: dict[int, np.ndarray] = {}
            for kk in range(2, min(k_max, n - 1) + 1):
                cents = _kmeans(x, kk, seed)
                score = _silhouette(x, _distances(x, cents).argmin(1), seed)
                if score is not None:
                    fits[kk], silhouette[kk] = cents, score
            best = max(silhouette, key=lambda kk: (silhouette[kk], -kk)) if silhouette else None
            if best is None:
                chosen, centroids = 1, x.mean(0, keepdims=True)
                reason = f"one group: too few distinct images ({n}) to compare groupings"
            elif silhouette[best] < min_silhouette:
                chosen, centroids = 1, x.mean(0, keepdims=True)
                reason = (
                    f"one group: best silhouette {silhouette[best]:.3f} (k = {best}) is below "
                    f"{min_silhouette:g}, no real cluster structure"
                )
            else:
                chosen, centroids = best, fits[best]
                reason = f"k = {best} by the best silhouette {silhouette[best]:.3f}"
        log.info("image groups: %s", reason)

        labels = _distances(x, centroids).argmin(1)
        # number clusters by their first training member; drop clusters left empty
        order = list(dict.fromkeys(labels.tolist()))
        if len(order) < chosen:
            reason += f" ({chosen - len(order)} empty cluster(s) dropped: duplicate images)"
        remap = np.full(len(centroids), -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        labels = remap[labels]
        centroids = centroids[order]
        dist = np.linalg.norm(x - centroids[labels], axis=1)
        sizes = [int((labels == j).sum()) for j in range(len(order))]
        radius = np.array(
            [np.percentile(dist[labels == j], RADIUS_PERCENTILE) for j in range(len(order))]
        )
        positive = radius[radius > 0]
        radius[radius <= 0] = float(np.median(positive)) if len(positive) else 1e-6
        return cls(centroids, radius, sizes, far_factor, silhouette, min_silhouette, reason)

    def assign(self, embeddings: np.ndarray) -> Assignment:
        """Nearest group of each embedding, and whether it is far from all groups.

        Args:
            embeddings: ``(N, D)`` finite floats with the D of the training embeddings (same
                backbone); N = 0 gives an empty assignment.

        Returns:
            :class:`Assignment`: group names, float32 Euclidean distances to the nearest
            centroid, and ``far = distance > far_factor * radius[group]``.

        Raises:
            DataError: not a finite (N, D) array, or D differs from the model's.
        """
        x = _as_embeddings(embeddings, "new", allow_empty=True)
        if x.shape[1] != self.centroids.shape[1]:
            raise DataError(
                f"embeddings have {x.shape[1]} dimensions, the image groups were fitted on "
                f"{self.centroids.shape[1]}",
                "embed the images with the same backbone as the training images",
            )
        if len(x) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return Assignment([], empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
        d = _distances(x, self.centroids.astype(np.float64))
        index = d.argmin(1).astype(np.int64)
        dist = d[np.arange(len(x)), index]
        far = dist > self.far_factor * self.radius.astype(np.float64)[index]
        return Assignment([self.names[i] for i in index], dist.astype(np.float32), far, index)

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The model as named arrays for a safetensors file.

        Returns:
            ``centroids`` (k, D) float32, ``radius`` (k,) float32, ``sizes`` (k,) int64,
            ``far_factor`` and ``min_silhouette`` (1,) float64, ``silhouette_k`` (m,) int64 and
            ``silhouette`` (m,) float64 (m = number of tried k, 0 when k was given).
        """
        ks = sorted(self.silhouette)
        return {
            "centroids": np.ascontiguousarray(self.centroids, dtype=np.float32),
            "radius": np.ascontiguousarray(self.radius, dtype=np.float32),
            "sizes": np.asarray(self.sizes, dtype=np.int64),
            "far_factor": np.asarray([self.far_factor], dtype=np.float64),
            "min_silhouette": np.asarray([self.min_silhouette], dtype=np.float64),
            "silhouette_k": np.asarray(ks, dtype=np.int64),
            "silhouette": np.asarray([self.silhouette[k] for k in ks], dtype=np.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Any]) -> GroupModel:
        """Rebuild a model from :meth:`to_tensors` output (NumPy arrays or torch tensors).

        Keys other than those of :meth:`to_tensors` are ignored; ``sizes`` and
        ``min_silhouette`` are optional.

        Raises:
            ModelDirError: a required array is missing or the shapes do not fit together.
        """

        def get(key: str) -> np.ndarray:
            value = tensors[key]
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            return np.asarray(value)

        fix = "the model directory is damaged or from another version; re-run `flawscope fit`"
        missing = [
            key
            for key in ("centroids", "radius", "far_factor", "silhouette_k", "silhouette")
            if key not in tensors
        ]
        if missing:
            raise ModelDirError(f"image groups lack tensor(s) {', '.join(missing)}", fix)
        centroids, radius = get("centroids"), get("radius")
        ks, scores, far = get("silhouette_k"), get("silhouette"), get("far_factor")
        k = len(centroids) if centroids.ndim == 2 else 0
        sizes = get("sizes") if "sizes" in tensors else np.zeros(k, dtype=np.int64)
        min_sil = get("min_silhouette") if "min_silhouette" in tensors else [MIN_SILHOUETTE]
        if (
            k < 1
            or centroids.shape[1] < 1
            or radius.shape != (k,)
            or sizes.shape != (k,)
            or far.size != 1
            or np.size(min_sil) != 1
            or ks.ndim != 1
            or ks.shape != scores.shape
        ):
            raise ModelDirError(
                f"image group tensors do not fit together: centroids {centroids.shape}, "
                f"radius {radius.shape}, sizes {sizes.shape}, silhouette_k {ks.shape}, "
                f"silhouette {scores.shape}, far_factor {far.shape}",
                fix,
            )
        silhouette = {int(a): float(b) for a, b in zip(ks, scores, strict=True)}
        min_silhouette = float(np.ravel(min_sil)[0])
        model = cls(
            centroids, radius, sizes.tolist(), float(far.ravel()[0]), silhouette, min_silhouette
        )
        if not silhouette:
            model.reason = f"k = {k} given"
        elif k == 1:
            model.reason = "one group: no real cluster structure"
        else:
            model.reason = f"k = {k} by the best silhouette {silhouette.get(k, float('nan')):.3f}"
        return model

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary for reports.

        Returns:
            ``k``, ``names``, ``sizes`` and ``radius`` per group name, ``far_factor``,
            ``silhouette`` per tried k (keys are strings), ``min_silhouette`` and ``reason``.
        """
        return {
            "k": self.k,
            "names": list(self.names),
            "sizes": dict(zip(self.names, self.sizes, strict=True)),
            "radius": {n: float(r) for n, r in zip(self.names, self.radius, strict=True)},
            "far_factor": self.far_factor,
            "silhouette": {str(k): v for k, v in sorted(self.silhouette.items())},
            "min_silhouette": self.min_silhouette,
            "reason": self.reason,
        }

"""Greedy coreset subsampling and chunked nearest-neighbour search for memory banks.

Both are used by PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection",
CVPR 2022):

- :func:`greedy_coreset` is the paper's Algorithm 1 (Sec. 3.2): iterative farthest-point
  (minimax facility location) selection, with the distances computed after a random linear
  projection to a few dimensions (Johnson-Lindenstrauss). It keeps one running minimum-distance
  vector of length N and updates it with each newly selected centre, so its memory is O(N) on top
  of the (projected) features: it never builds an N x M distance matrix.
- :func:`nearest_neighbours` finds the k nearest bank rows of each query row by walking
  ``query_chunk x bank_chunk`` blocks of squared distances (one matrix product each, with the
  bank's squared norms computed once) and merging a running top-k, so the largest temporary is
  one block whatever the number of queries or the bank size.

All distances are Euclidean (L2), in the units of the features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def coreset_size(n: int, ratio: float, max_size: int | None = None) -> int:
    """Number of rows a coreset of ``ratio`` keeps out of ``n``.

    ``ceil(ratio * n)`` (with a 1e-9 tolerance, so ``0.1 * 30`` keeps 3, not 4), at least 1, at
    most ``n`` and at most ``max_size`` when given.

    Raises:
        ValueError: ``n < 1`` or ``ratio`` outside ``(0, 1]``.
    """
    if n < 1:
        raise ValueError(f"cannot subsample {n} rows")
    if not 0 < ratio <= 1:
        raise ValueError(f"coreset ratio must be in (0, 1], got {ratio}")
    k = max(1, math.ceil(ratio * n - 1e-9))
    if max_size is not None:
        k = min(k, max_size)
    return min(k, n)


def random_projection(
    dim_in: int, dim_out: int, generator: torch.Generator | None = None
) -> Tensor:
    """Gaussian random projection matrix ``(dim_in, dim_out)`` float32, entries N(0, 1/dim_out).

    ``x @ P`` approximately preserves pairwise Euclidean distances (Johnson-Lindenstrauss), which
    is what PatchCore Sec. 3.2 uses to make the coreset selection cheaper.
    """
    return torch.randn(dim_in, dim_out, generator=generator) / math.sqrt(dim_out)


def greedy_coreset(
    features: Tensor,
    n: int,
    projection_dim: int | None = 128,
    generator: torch.Generator | None = None,
    start: int | None = None,
) -> Tensor:
    """Indices of a greedy (farthest-point) coreset of ``features`` (PatchCore Alg. 1).

    Starting from ``start`` (or a random row drawn with ``generator``), repeatedly add the row
    whose distance to its nearest already-selected row is largest. The running minimum-distance
    vector (length N) is updated with each new centre only, so memory is O(N) besides the
    features (and their projection, ``N x projection_dim``).

    Args:
        features: ``(N, D)`` float tensor (any device; work happens there).
        n: number of rows to select, ``1 <= n``; ``n >= N`` returns all rows ``0..N-1`` in order.
        projection_dim: distances are computed after a Gaussian random projection to this many
            dimensions (drawn with ``generator``); None, or ``>= D``, uses the raw features.
        generator: CPU generator for the projection and the random start (reproducible).
        start: index of the first selected row; None draws it at random.

    Returns:
        ``(n,)`` int64 indices (on ``features.device``), distinct, in selection order.

    Raises:
        ValueError: ``features`` is not 2-D or empty, ``n < 1`` or ``start`` out of range.
    """
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must be a non-empty (N, D) tensor, got {tuple(features.shape)}")
    if n < 1:
        raise ValueError(f"coreset size must be >= 1, got {n}")
    total, dim = features.shape
    device = features.device
    if n >= total:
        return torch.arange(total, device=device)
    x = features.float()
    if projection_dim is not None and projection_dim < dim:
        x = x @ random_projection(dim, projection_dim, generator).to(device)
    # Centring does not change distances but keeps the norms small, which keeps the
    # ||a||^2 - 2 a.b + ||b||^2 expansion accurate in float32.
    x = x - x.mean(dim=0)
    sq = (x * x).sum(dim=1)
    if start is None:
        start = int(torch.randint(total, (1,), generator=generator).item())
    if not 0 <= start < total:
        raise ValueError(f"start index {start} is outside 0..{total - 1}")

    def sq_dist_to(j: int) -> Tensor:  # (N,) squared distances of all rows to row j
        return (sq - 2.0 * (x @ x[j]) + sq[j]).clamp_min_(0.0)

    selected = torch.empty(n, dtype=torch.long, device=device)
    selected[0] = start
    min_d = sq_dist_to(start)
    min_d[start] = -1.0  # selected rows can never win the argmax again (no duplicates)
    for i in range(1, n):
        j = int(torch.argmax(min_d).item())
        selected[i] = j
        torch.minimum(min_d, sq_dist_to(j), out=min_d)
        min_d[j] = -1.0
    return selected


def nearest_neighbours(
    queries: Tensor,
    bank: Tensor,
    k: int = 1,
    query_chunk: int = 1024,
    bank_chunk: int = 2048,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest ``bank`` rows of every query row, searched block by block.

    For one ``(query_chunk, bank_chunk)`` block, ``||b||^2 - 2 q.b`` is computed with one matrix
    product, reduced to the block's own top-k (a plain minimum for k = 1) and merged into a
    running top-k; ``||q||^2`` (constant along a row) and the square root are applied to the
    winners only. The largest temporary is one block (defaults: 1024 x 2048 float32 = 8 MiB)
    however many queries or bank rows there are.

    Args:
        queries: ``(Q, D)`` float tensor.
        bank: ``(M, D)`` float tensor on the same device, ``M >= 1``.
        k: neighbours per query, ``1 <= k <= M``.
        query_chunk, bank_chunk: block sizes (rows), ``>= 1``.

    Returns:
        ``(distances, indices)``: ``(Q, k)`` float32 Euclidean distances sorted ascending, and the
        matching ``(Q, k)`` int64 bank row indices.

    Raises:
        ValueError: empty bank, dimension mismatch, ``k`` outside ``1..M`` or a chunk < 1.
    """
    if bank.ndim != 2 or len(bank) == 0:
        raise ValueError(f"bank must be a non-empty (M, D) tensor, got {tuple(bank.shape)}")
    if queries.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(
            f"queries {tuple(queries.shape)} do not match the bank's {bank.shape[1]} dimensions"
        )
    if not 1 <= k <= len(bank):
        raise ValueError(f"k must be in 1..{len(bank)}, got {k}")
    if query_chunk < 1 or bank_chunk < 1:
        raise ValueError("chunk sizes must be >= 1")
    n_q, device = len(queries), queries.device
    out_d = torch.empty(n_q, k, dtype=torch.float32, device=device)
    out_i = torch.empty(n_q, k, dtype=torch.long, device=device)
    bank = bank.float()
    bank_sq = (bank * bank).sum(dim=1)
    for q0 in range(0, n_q, query_chunk):
        d, i = nearest_in_bank(queries[q0 : q0 + query_chunk], bank, bank_sq, k, bank_chunk)
        out_d[q0 : q0 + len(d)] = d
        out_i[q0 : q0 + len(d)] = i
    return out_d, out_i


def nearest_in_bank(
    queries: Tensor, bank: Tensor, bank_sq: Tensor, k: int, bank_chunk: int
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest ``bank`` rows of all ``queries`` at once, walking the bank in chunks.

    One query chunk of :func:`nearest_neighbours` (which checks the arguments). It loops over
    the bank only (a fixed size), never over the queries, so it can be traced into an exported
    graph whose number of queries is a dynamic axis (:mod:`flawscope.models.onnx_graphs`).

    Args:
        queries: ``(Q, D)`` float tensor.
        bank: ``(M, D)`` float32 tensor, ``M >= k``; bank_sq: its ``(M,)`` squared row norms.
        k: neighbours per query; bank_chunk: bank rows per ``(Q, bank_chunk)`` block.

    Returns:
        ``(distances, indices)``: ``(Q, k)`` float32 Euclidean distances sorted ascending and
        the matching ``(Q, k)`` int64 bank row indices.
    """
    q = queries.float()
    q_sq = (q * q).sum(dim=1, keepdim=True)
    best_d: Tensor | None = None
    best_i: Tensor | None = None
    for b0 in range(0, len(bank), bank_chunk):
        b1 = b0 + bank_chunk
        # ||b||^2 - 2 q.b in one BLAS call; ||q||^2 is the same along a row, so it cannot
        # change which bank rows are nearest and is added to the winners only
        block = torch.addmm(bank_sq[b0:b1], q, bank[b0:b1].T, alpha=-2.0)
        if k == 1:
            block_d, block_i = block.min(dim=1, keepdim=True)
        else:
            kb = min(k, block.shape[1])
            block_d, block_i = torch.topk(block, kb, dim=1, largest=False, sorted=False)
        cand_d = block_d if best_d is None else torch.cat([best_d, block_d], dim=1)
        cand_i = block_i + b0 if best_i is None else torch.cat([best_i, block_i + b0], dim=1)
        best_d, pos = torch.topk(cand_d, min(k, cand_d.shape[1]), dim=1, largest=False)
        best_i = torch.gather(cand_i, 1, pos)
    assert best_d is not None and best_i is not None  # the bank has at least one row
    return (best_d + q_sq).clamp_min(0.0).sqrt(), best_i

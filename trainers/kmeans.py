"""Spherical k-means and the neighbour-cluster table of SSPS (SPEC §5, §6, §17.4-5).

Adapted from the DeepCluster-v2 k-means of SwAV (facebookresearch/swav, `main_deepclusterv2.py`,
`cluster_memory`): random rows as initial centroids, cosine E-step, normalised-sum M-step, empty
clusters keep their centroid. Re-written to be one-process and fully batched: the E-step is a
chunked matmul + argmax, the M-step one `index_add_` + one `bincount`; no loop over clusters or
samples, no host round trip inside an iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class KMeansResult(NamedTuple):
    """Centroids (K, D) unit-norm, assignment (n,) in [0, K), counts (K,) of the assignment."""

    centroids: torch.Tensor
    assignment: torch.Tensor
    counts: torch.Tensor


def _chunk_rows(num_clusters: int, budget: int = 1 << 21) -> int:
    """Rows per E-step chunk so that a (rows, K) score block stays cache-sized (~8 MB fp32):
    measured 1.3-1.5x faster than 128 MB blocks on a 2-core CPU (benchmarks/bench_ssps.py)."""
    return max(1, budget // max(num_clusters, 1))


def assign(
    x: torch.Tensor,
    centroids: torch.Tensor,
    chunk_size: int | None = None,
    score_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """argmax_k x_i . c_k for every row of x (n, D), in row chunks; returns (n,) int64.

    `score_dtype=torch.bfloat16` is the optional reduced-precision E-step of SPEC §5 (about 2x
    faster on this AMX CPU); its agreement with fp32 is measured in benchmarks/bench_ssps.py.
    """
    chunk = max(1, min(chunk_size or _chunk_rows(centroids.shape[0]), x.shape[0]))
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    centroids_t = centroids.T.to(score_dtype).contiguous()  # (D, K)
    # one score block and one result pair reused by every chunk: a fresh 8 MB block per chunk
    # costs page faults that measured ~15-30% of the E-step on CPU
    scores = torch.empty(chunk, centroids.shape[0], dtype=score_dtype, device=x.device)
    best = torch.empty(chunk, dtype=score_dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        rows = x[start : start + chunk].to(score_dtype)
        m = rows.shape[0]
        torch.mm(rows, centroids_t, out=scores[:m])  # (chunk, K)
        # max().indices: same first-maximum tie rule as argmax, 2-4x faster on CPU
        torch.max(scores[:m], dim=1, out=(best[:m], out[start : start + m]))
    return out


def spherical_kmeans(
    x: torch.Tensor,
    num_clusters: int,
    num_iters: int,
    generator: torch.Generator,
    chunk_size: int | None = None,
    initial_rows: torch.Tensor | None = None,
    score_dtype: torch.dtype = torch.float32,
) -> KMeansResult:
    """Cluster unit-norm rows `x` (n, D) into `num_clusters` by cosine similarity.

    `num_iters` rounds of E-step + M-step, then a final E-step whose assignment is returned
    (so the assignment is consistent with the returned centroids). Initial centroids are
    `num_clusters` distinct rows drawn with `generator` (which must live on x's device), or
    the given `initial_rows` (K,) (tests compare against a loop oracle with the same start).
    `score_dtype` is the E-step precision (fp32 default; M-step sums are always fp32).
    """
    n = x.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(
            f"k-means needs 1 <= num_clusters <= number of rows; got num_clusters={num_clusters} "
            f"for {n} filled rows (collect more samples or lower num_clusters)"
        )
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters!r}")
    x = x.to(torch.float32)
    if initial_rows is None:
        initial = torch.randperm(n, generator=generator, device=generator.device)[:num_clusters]
    elif initial_rows.shape != (num_clusters,):
        raise ValueError(f"initial_rows must have shape ({num_clusters},), got {initial_rows.shape}")
    else:
        initial = initial_rows
    centroids = x[initial.to(x.device)].clone()  # (K, D)
    for _ in range(num_iters):
        assignment = assign(x, centroids, chunk_size, score_dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, x)  # (K, D)
        counts = torch.bincount(assignment, minlength=num_clusters)
        centroids = torch.where(counts[:, None] > 0, F.normalize(sums, dim=1), centroids)
    assignment = assign(x, centroids, chunk_size, score_dtype)
    return KMeansResult(centroids, assignment, torch.bincount(assignment, minlength=num_clusters))


def neighbour_table(
    centroids: torch.Tensor, num_neighbours: int, chunk_size: int | None = None
) -> torch.Tensor:
    """Candidate clusters of each cluster, (K, max(M, 1)) int64 (SPEC §6).

    M = 0: the cluster itself. M >= 1: the M most similar *other* clusters by centroid cosine,
    in descending similarity (one `topk` per row chunk with the diagonal masked to -inf).
    """
    k = centroids.shape[0]
    if num_neighbours == 0:
        return torch.arange(k, device=centroids.device)[:, None]
    if not 1 <= num_neighbours < k:
        raise ValueError(
            f"num_neighbours must be in [0, num_clusters - 1] = [0, {k - 1}], got {num_neighbours}"
        )
    chunk = chunk_size or _chunk_rows(k)
    out = torch.empty(k, num_neighbours, dtype=torch.long, device=centroids.device)
    centroids_t = centroids.T.contiguous()
    for start in range(0, k, chunk):
        rows = torch.arange(start, min(start + chunk, k), device=centroids.device)
        similarity = centroids[rows] @ centroids_t  # (rows, K)
        similarity[torch.arange(rows.shape[0], device=rows.device), rows] = float("-inf")
        out[rows] = similarity.topk(num_neighbours, dim=1).indices
    return out


def normalized_mutual_info(a: torch.Tensor, b: torch.Tensor) -> float:
    """NMI of two labelings (n,) with arithmetic normalisation (scikit-learn's default).

    Contingency counts come from one `unique` over pair codes, so K x S is never dense.
    """
    if a.shape != b.shape or a.ndim != 1 or a.numel() == 0:
        raise ValueError(f"NMI needs two non-empty labelings of equal length, got {a.shape}, {b.shape}")
    a = torch.unique(a, return_inverse=True)[1]
    b = torch.unique(b, return_inverse=True)[1]
    n = float(a.numel())
    pairs, joint = torch.unique(a * (int(b.max()) + 1) + b, return_counts=True)
    count_a = torch.bincount(a).double()
    count_b = torch.bincount(b).double()
    pa, pb = pairs // (int(b.max()) + 1), pairs % (int(b.max()) + 1)
    joint = joint.double()
    mi = (joint / n * torch.log(joint * n / (count_a[pa] * count_b[pb]))).sum()
    ha = -(count_a / n * torch.log(count_a / n)).sum()
    hb = -(count_b / n * torch.log(count_b / n)).sum()
    denominator = (ha + hb) / 2
    if float(denominator) == 0.0:
        return 1.0
    return float((mi / denominator).clamp(0.0, 1.0))

"""Spherical k-means and the neighbour-cluster table of SSPS (docs/method.md §5, §6, §17.4-5).

Adapted from the DeepCluster-v2 k-means of SwAV (facebookresearch/swav, `main_deepclusterv2.py`,
`cluster_memory`): random rows as initial centroids, cosine E-step, normalised-sum M-step, empty
clusters keep their centroid. Re-written to be one-process and fully batched: the E-step is a
chunked matmul + argmax, the M-step one `index_add_` + one `bincount`; no loop over clusters or
samples, no host round trip inside an iteration.

The E-steps live in `estep.py` (plain) and `estep_certified.py` (bf16 screen, certified exact).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F

from .estep import _chunk_rows, assign
from .estep_certified import _screen, assign_certified

__all__ = ["KMeansResult", "Precision", "assign", "assign_certified", "neighbour_table", "spherical_kmeans"]


class KMeansResult(NamedTuple):
    """Centroids (K, D) unit-norm, assignment (n,) in [0, K), counts (K,) of the assignment."""

    centroids: torch.Tensor
    assignment: torch.Tensor
    counts: torch.Tensor


Precision = Literal["float32", "certified", "auto", "bfloat16", "float16"]
PRECISIONS = get_args(Precision)


def _bf16_matmul_is_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def spherical_kmeans(
    x: torch.Tensor,
    num_clusters: int,
    num_iters: int,
    generator: torch.Generator,
    chunk_size: int | None = None,
    initial_rows: torch.Tensor | None = None,
    precision: Precision = "float32",
) -> KMeansResult:
    """Cluster unit-norm rows `x` (n, D) into `num_clusters` by cosine similarity.

    `num_iters` rounds of E-step + M-step, then a final E-step whose assignment is returned
    (so the assignment is consistent with the returned centroids). Initial centroids are
    `num_clusters` distinct rows drawn with `generator` (which must live on x's device), or
    the given `initial_rows` (K,) (tests compare against a loop oracle with the same start).
    `precision` of the E-step (M-step sums are always fp32):
      "float32"   plain fp32 matmul + argmax (docs/method.md §5 default);
      "certified" bf16 screen with a proven bound, fp32 scores for the rows it cannot
                  decide: the fp32 assignments, faster (`assign_certified`);
      "auto"      "certified" where bf16 matmuls are native (AMX/AVX512-BF16 CPUs, CUDA),
                  else "float32": the same assignments either way;
      "bfloat16", "float16"  approximate E-steps (agreement measured in bench_ssps.py).
    """
    n = x.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(
            f"k-means needs 1 <= num_clusters <= number of rows; got num_clusters={num_clusters} "
            f"for {n} filled rows (collect more samples or lower num_clusters)"
        )
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    x = x.to(torch.float32)
    if precision == "auto":
        precision = "certified" if _bf16_matmul_is_native(x.device) else "float32"
    if precision == "certified":
        screen = _screen(x)  # rounded once: x does not change between iterations
        e_step = lambda c: assign_certified(x, c, chunk_size, screen)  # noqa: E731
    else:
        dtype = getattr(torch, precision)
        e_step = lambda c: assign(x, c, chunk_size, dtype)  # noqa: E731
    if initial_rows is None:
        initial = torch.randperm(n, generator=generator, device=generator.device)[:num_clusters]
    elif initial_rows.shape != (num_clusters,):
        raise ValueError(f"initial_rows must have shape ({num_clusters},), got {initial_rows.shape}")
    else:
        initial = initial_rows
    centroids = x[initial.to(x.device)].clone()  # (K, D)
    for _ in range(num_iters):
        assignment = e_step(centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, x)  # (K, D)
        counts = torch.bincount(assignment, minlength=num_clusters)
        centroids = torch.where(counts[:, None] > 0, F.normalize(sums, dim=1), centroids)
    assignment = e_step(centroids)
    return KMeansResult(centroids, assignment, torch.bincount(assignment, minlength=num_clusters))


def neighbour_table(
    centroids: torch.Tensor, num_neighbours: int, chunk_size: int | None = None
) -> torch.Tensor:
    """Candidate clusters of each cluster, (K, max(M, 1)) int64 (docs/method.md §6).

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

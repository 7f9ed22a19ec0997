"""The plain E-step of spherical k-means: each row's most similar centroid (docs/method.md §5,
§17.4), by chunked matmul and a lane-blocked argmax. The certified bf16 E-step built on it is in
`estep_certified.py`; the k-means loop in `kmeans.py`.
"""

from __future__ import annotations

import torch


def _chunk_rows(num_clusters: int, itemsize: int = 4, budget: int = 8 << 20) -> int:
    """Rows per E-step chunk so that a (rows, K) score block stays cache-sized (~8 MB):
    measured 1.3-1.5x faster than 128 MB blocks on a 2-core CPU (benchmarks/bench_ssps.py)."""
    return max(1, budget // max(num_clusters * itemsize, 1))


_LANES = 64  # column groups of the argmax pass (see _best_and_runner_up)


def _padded(centroids: torch.Tensor) -> torch.Tensor:
    """(D, Kp) transposed centroids, zero columns up to a multiple of _LANES."""
    k, d = centroids.shape
    out = torch.zeros(d, -(-k // _LANES) * _LANES, dtype=centroids.dtype, device=centroids.device)
    out[:, :k] = centroids.T
    return out


def _best_and_runner_up(
    scores: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of `scores` (m, Kp), Kp a multiple of _LANES: the max, a column holding it, the
    runner-up (largest value at any other column; equal to the max when it is tied), and the
    (m, L) lane maxima (max over columns c with c mod L = lane).

    The certified E-step needs the runner-up too. With torch's max-with-indices that is two
    passes over the block (max, mask the winner, max again); on bf16 one such pass costs about
    as much as this whole function (~15 ms per 20k x 2k block on this CPU), because it is not
    vectorised while a values-only max is. So the one full pass here is a vectorised max
    *across* column groups, scores viewed as (m, Kp / L, L): for each of the L lanes, the max
    over the groups. Everything after that touches (m, L) or (m, Kp / L) values.
    """
    m, kp = scores.shape
    groups = scores.view(m, kp // _LANES, _LANES)  # column = group * L + lane
    lane_max = torch.amax(groups, dim=1)  # (m, L): the only pass over the whole block
    top, lane = torch.max(lane_max, dim=1)
    rows = torch.arange(m, device=scores.device)
    along = groups[rows, :, lane]  # (m, Kp / L): the winning lane in every group
    _, group = torch.max(along, dim=1)
    other_lanes = lane_max.clone()
    other_lanes[rows, lane] = float("-inf")
    along[rows, group] = float("-inf")
    runner = torch.maximum(other_lanes.amax(dim=1), along.amax(dim=1))
    return top, group * _LANES + lane, runner, lane_max


def assign(
    x: torch.Tensor,
    centroids: torch.Tensor,
    chunk_size: int | None = None,
    score_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """argmax_k x_i . c_k for every row of x (n, D), in row chunks; returns (n,) int64, ties
    to the first maximum (as `torch.argmax`).

    `score_dtype=torch.bfloat16` is the optional reduced-precision E-step of docs/method.md §5; its
    agreement with fp32 is measured in benchmarks/bench_ssps.py. `assign_certified` gives the
    fp32 assignments at about 1.3x the bf16 cost.
    """
    k = centroids.shape[0]
    chunk = max(1, min(chunk_size or _chunk_rows(k, score_dtype.itemsize), x.shape[0]))
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    centroids_t = centroids.T.to(score_dtype).contiguous()  # (D, K)
    # one score block and one result pair reused by every chunk: a fresh 8 MB block per chunk
    # costs page faults that measured ~15-30% of the E-step on CPU
    scores = torch.empty(chunk, k, dtype=score_dtype, device=x.device)
    best = torch.empty(chunk, dtype=score_dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        m = min(chunk, x.shape[0] - start)
        torch.mm(x[start : start + m].to(score_dtype), centroids_t, out=scores[:m])
        # max().indices: same first-maximum tie rule as argmax, 2-4x faster on CPU
        torch.max(scores[:m], dim=1, out=(best[:m], out[start : start + m]))
    return out

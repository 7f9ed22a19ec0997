"""The certified E-step (docs/method.md §5, §17.4): a bf16 screen with a proven error bound decides
most rows; the rows it cannot decide get fp32 scores, so the assignments equal the fp32 E-step's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .estep import _LANES, _best_and_runner_up, _chunk_rows, _padded, assign


class _Screen(NamedTuple):
    """x rounded to bf16 once per k-means run, with what the error bound needs per row."""

    rows: torch.Tensor  # (n, D) bf16
    norm: torch.Tensor  # (n,) |x~_i|, fp32
    residual: torch.Tensor  # (n,) |x_i - x~_i|, fp32


def _screen(x: torch.Tensor, block: int = 1 << 16) -> _Screen:
    """In row blocks: the fp32 temporaries are one block, not two more copies of the table."""
    rows = x.to(torch.bfloat16)
    norm = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    residual = torch.empty_like(norm)
    for start in range(0, x.shape[0], block):
        wide = rows[start : start + block].float()
        torch.linalg.vector_norm(wide, dim=1, out=norm[start : start + block])
        torch.linalg.vector_norm(wide.sub_(x[start : start + block]), dim=1, out=residual[start : start + block])
    return _Screen(rows, norm, residual)


_FP32_UNIT = 2.0**-24


def _half_ulp(value: torch.Tensor) -> torch.Tensor:
    """Bound on |a - bf16(a)| given the rounded value v = bf16(a) (fp32 tensor of bf16 values):
    half the bf16 spacing of v's binade, 2^(e - 8) for |v| in [2^e, 2^(e+1)). When a rounded
    across a binade edge this is the larger binade's, so still a bound."""
    _, exponent = torch.frexp(value)  # |v| = m 2^exponent, m in [0.5, 1): e = exponent - 1
    return torch.ldexp(torch.ones_like(value), exponent - 9)


def assign_certified(
    x: torch.Tensor,
    centroids: torch.Tensor,
    chunk_size: int | None = None,
    screen: _Screen | None = None,
) -> torch.Tensor:
    """The fp32 E-step's assignments at about the cost of a bf16 one (docs/method.md §5, §17.4).

    A bf16 matmul screens every row; a row keeps the bf16 argmax only when a rigorous bound
    proves it is the exact argmax, and is otherwise settled by fp32 scores of the few columns
    the bound cannot rule out (`_settle`). For row i with bf16
    scores s^ (fp32-accumulated, then rounded to bf16), the exact scores s = x . c satisfy

        |s_k - s^_k| <= h(s^_k) + e_i,  h = half the bf16 spacing at s^_k (output rounding),
        e_i = |x~_i| max_k |c_k - c~_k| + |x_i - x~_i| max_k |c_k| + 2 D 2^-24 |x~_i| max_k |c~_k|

    (Cauchy-Schwarz on x . c - x~ . c~ = x~ . (c - c~) + (x - x~) . c, plus the fp32
    accumulation of D exact bf16 products). If s^_(2) + h(s^_(2)) + e_i < s^_(1) - h(s^_(1)) - e_i
    for the best and second-best bf16 scores, no other centroid can beat the bf16 winner.
    On the benchmark's data about 7 % of rows are undecided at N=20k, K=2k and about a third at
    N=100k, K=5k (4 clusters per true blob); benchmarks/bench_ssps.py reports the agreement
    with the plain fp32 E-step.
    """
    n, d = x.shape
    k = centroids.shape[0]
    if k == 1:
        return torch.zeros(n, dtype=torch.long, device=x.device)
    screen = screen or _screen(x)
    chunk = max(1, min(chunk_size or _chunk_rows(k, 2), n))
    low = centroids.to(torch.bfloat16)
    low_t = _padded(low)  # (D, Kp)
    c_residual = (centroids - low.float()).norm(dim=1).max()
    c_norm = centroids.norm(dim=1).max()
    c_low_norm = low.float().norm(dim=1).max()
    slack = screen.norm * c_residual + screen.residual * c_norm + 2 * d * _FP32_UNIT * screen.norm * c_low_norm
    out = torch.empty(n, dtype=torch.long, device=x.device)
    full = torch.zeros(n, dtype=torch.bool, device=x.device)  # rows recomputed over all K in fp32
    scores = torch.empty(chunk, low_t.shape[1], dtype=torch.bfloat16, device=x.device)
    # cuBLAS may reduce bf16 products in reduced precision by default; the bound needs fp32
    cuda = x.is_cuda
    previous = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction if cuda else None
    if cuda:
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            block = scores[:m]
            torch.mm(screen.rows[start : start + m], low_t, out=block)
            block[:, k:] = float("-inf")
            top, best, runner, lane_max = _best_and_runner_up(block)
            out[start : start + m] = best
            top, runner = top.float(), runner.float()
            e = slack[start : start + m]
            unsure = runner + _half_ulp(runner) + e >= top - _half_ulp(top) - e
            doubt = torch.nonzero(unsure).squeeze(1)  # a few % of rows; one host sync per chunk
            if doubt.numel():
                _settle(x, centroids, block, lane_max, start, doubt, top[doubt], e[doubt], out, full)
    finally:
        if cuda:
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = previous
    redo = torch.nonzero(full).squeeze(1)
    if redo.numel():
        out[redo] = assign(x[redo], centroids, chunk_size)
    return out


_CANDIDATES = 4  # columns a doubtful row is settled from; rows with more go to a full fp32 pass


def _settle(
    x: torch.Tensor,
    centroids: torch.Tensor,
    block: torch.Tensor,
    lane_max: torch.Tensor,
    start: int,
    doubt: torch.Tensor,
    top: torch.Tensor,
    slack: torch.Tensor,
    out: torch.Tensor,
    full: torch.Tensor,
) -> None:
    """Exact argmax of the undecided rows `doubt` of a chunk, from their candidate columns only.

    With floor = s^_(1) - 2 h(s^_(1)) - 2 e > 0, any column below the floor has
    s_k <= s^_k + h(s^_k) + e < s^_(1) - h(s^_(1)) - e <= s_winner (h is monotone on [0, s^_(1)], and
    negative s^_k give s_k < e < floor); so the argmax is among the columns at or above the
    floor. They are looked for in the two lanes with the highest maxima only (a third lane whose
    maximum reaches the floor sends the row to the full pass), and when the top _CANDIDATES
    values of those two lanes include all of them (typically 2-3), they are scored in fp32 and
    the first maximum is taken. Other rows (more candidates, or floor <= 0: no useful bound)
    are flagged in `full` for an fp32 pass over all K. Nothing here reads a whole row.
    """
    m, kp = block.shape
    groups = block.view(m, kp // _LANES, _LANES)
    floor = top - 2 * _half_ulp(top) - 2 * slack
    lane_values, lanes = lane_max[doubt].topk(3, dim=1)  # (u, 3)
    settled = (floor > 0) & (lane_values[:, 2].float() < floor)
    two = lanes[:, :2]  # (u, 2)
    values = groups[doubt[:, None], :, two].flatten(1)  # (u, 2 * Kp / L): lane j, group g at j * G + g
    r = min(_CANDIDATES, values.shape[1])
    top_values, where = values.topk(r, dim=1)
    candidate = top_values.float() >= floor[:, None]
    if r < values.shape[1]:
        settled &= ~candidate[:, -1]  # the r-th is below the floor: every candidate is among the r
    lane = torch.gather(two, 1, where // groups.shape[1])
    columns = (where % groups.shape[1]) * _LANES + lane  # (u, r)
    full[start + doubt[~settled]] = True
    rows, columns, candidate = doubt[settled], columns[settled], candidate[settled]
    # padding columns (>= K, when K is not a multiple of the lane width) are never candidates;
    # clamp them before indexing so that no out-of-range centroid is read
    k = centroids.shape[0]
    candidate &= columns < k
    columns = columns.clamp(max=k - 1)
    exact = torch.einsum("ud,urd->ur", x[start + rows], centroids[columns])  # fp32 dots
    exact = exact.masked_fill(~candidate, float("-inf"))
    best = exact.amax(dim=1, keepdim=True)
    first = torch.where(exact == best, columns, centroids.shape[0]).amin(dim=1)  # ties: first column
    out[start + rows] = first

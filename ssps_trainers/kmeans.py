"""Spherical k-means and the neighbour-cluster table of SSPS (docs/method.md §5, §6, §17.4-5).

Adapted from the DeepCluster-v2 k-means of SwAV (facebookresearch/swav, `main_deepclusterv2.py`,
`cluster_memory`): random rows as initial centroids, cosine E-step, normalised-sum M-step, empty
clusters keep their centroid. Re-written to be one-process and fully batched: the E-step is a
chunked matmul + argmax, the M-step one `index_add_` + one `bincount`; no loop over clusters or
samples, no host round trip inside an iteration.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F


class KMeansResult(NamedTuple):
    """Centroids (K, D) unit-norm, assignment (n,) in [0, K), counts (K,) of the assignment."""

    centroids: torch.Tensor
    assignment: torch.Tensor
    counts: torch.Tensor


Precision = Literal["float32", "certified", "auto", "bfloat16", "float16"]
PRECISIONS = get_args(Precision)


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

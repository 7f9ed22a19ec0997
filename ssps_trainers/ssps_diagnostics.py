"""Label-free checks of an SSPS bootstrap: will the pseudo-positives be the anchor's speaker?

SSPS (Lepage & Dehak, TASLP 2025) only helps when the bootstrap model's nearby clusters hold
the anchor's speaker; on a weak bootstrap it pulls anchors towards other speakers and makes
the encoder worse. Before a continuation, these statistics estimate from the data alone how
trustworthy the pseudo-positives will be. Plain torch (siblings only), vectorised.

Inputs are unit-norm reference embeddings of the training set from two independent clean
crops of every utterance, `first` and `second` (N, D), and the SSPS K and M. The
pseudo-positive relation "j is drawn for anchor i" is the one of `SSPS._sample_kmeans`: j is a
uniform member of the cluster c* = neighbours[assignment[i], r], r uniform over the M ranks.

Label-free statistics (all in [0, 1]):

- `pool_agreement`: draw (i, j) under a clustering of `first`; the fraction of pairs whose
  relation still holds (j in i's cluster or in one of its M candidate clusters) under an
  independently seeded clustering of `second`. Stability of the relation under another crop
  and another k-means start (cluster-stability validation in the spirit of Lange et al.,
  "Stability-based validation of clustering solutions", Neural Computation 2004).
- `seed_agreement`: the same with `first` clustered twice (only the k-means start differs);
  this is what the trainer's `ssps_gate=agreement` checks at every refresh.
- `mutual_knn`: fraction of 10-nearest-neighbour pairs that are mutual (Jarvis & Patrick's
  shared-neighbour idea: mutual pairs are the ones a density of same-class points produces).
- `crop_knn_overlap`: mean overlap of an utterance's 10 nearest neighbours computed from
  `first` and from `second` (neighbours that survive another crop of the same recording).

With labels (speaker, and session = speaker/video), the label-based rates they estimate:
`knn_same_speaker`, `pool_same_speaker`, `pool_same_session`, and the rate and coverage among
the pairs the `agreement` gate keeps (`agreed_same_speaker`; its coverage is `seed_agreement`)
and among the pairs that agree across crops (`crop_agreed_same_speaker`).
"""

from __future__ import annotations

import torch

from .kmeans import neighbour_table, spherical_kmeans
from .seeds import diagnostic_start

NEIGHBOURS = 10
# The verdict: the paper's SSPS is recommended when this label-free statistic of the bootstrap
# reaches the threshold, else the agreement gate is. `pool_agreement` tracked the true pool
# same-speaker rate best over every base checkpoint of our corpora; 0.35 was placed between
# the single runs of the corpus where the paper's SSPS was lower (0.384; pool purity 0.60) and
# the one where it was not (0.326; purity 0.51): a rough calibration, see docs/ssps_robustness.md. The trainer can only compute the
# same-crop `seed_agreement` at its refreshes (a coarser estimate): it warns below
# MIN_SEED_AGREEMENT when it runs without the gate.
VERDICT_STATISTIC = "pool_agreement"
VERDICT_THRESHOLD = 0.35
MIN_SEED_AGREEMENT = 0.3


def paper_ssps_recommended(stats: dict[str, float]) -> bool:
    """The verdict for `bootstrap_diagnostics` output: True when the paper's SSPS (no gate)
    is expected to help, False when it is expected to hurt (then: no SSPS, docs/ssps_robustness.md)."""
    return stats[VERDICT_STATISTIC] >= VERDICT_THRESHOLD


def nearest_neighbours(x: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """Indices (N, k) of each row's k most cosine-similar other rows of unit-norm `x` (N, D)."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} rows, got {k}")
    out = torch.empty(n, k, dtype=torch.long, device=x.device)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=x.device)
        similarity = x[rows] @ x.T
        similarity[torch.arange(rows.shape[0], device=x.device), rows] = float("-inf")
        out[rows] = similarity.topk(k, dim=1).indices
    return out


def mutual_rate(neighbours: torch.Tensor) -> float:
    """Fraction of pairs (i, j in neighbours[i]) with i in neighbours[j]."""
    n, k = neighbours.shape
    anchors = torch.arange(n, device=neighbours.device)[:, None].expand(n, k)
    back = (neighbours[neighbours] == anchors[..., None]).any(dim=-1)  # (N, k)
    return float(back.float().mean())


def overlap_rate(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |a[i] & b[i]| / k over rows of two (N, k) neighbour lists."""
    return float((a[:, :, None] == b[:, None, :]).any(dim=-1).float().mean())


def draw_pool_partners(
    assignment: torch.Tensor, neighbours: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """One partner j per row i (N,): a uniform member of a uniform candidate cluster of i's
    cluster (SSPS k-means sampling with the whole training set as the queue); -1 where that
    cluster is empty or holds only i."""
    n, (num_clusters, m) = assignment.shape[0], neighbours.shape
    order = torch.argsort(assignment, stable=True)
    counts = torch.bincount(assignment, minlength=num_clusters)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.randint(0, m, (n,), generator=generator, device=generator.device).to(assignment.device)
    chosen = neighbours[assignment, rank]
    count = counts[chosen]
    uniform = torch.rand(n, generator=generator, device=generator.device).to(assignment.device)
    offset = torch.minimum((uniform * count).long(), (count - 1).clamp(min=0))
    partner = order[(starts[chosen] + offset).clamp(max=n - 1)]
    ok = (count > 0) & (partner != torch.arange(n, device=assignment.device))
    return torch.where(ok, partner, -1)


def relation_holds(
    assignment: torch.Tensor, neighbours: torch.Tensor, anchors: torch.Tensor, partners: torch.Tensor
) -> torch.Tensor:
    """(len,) bool: partner's cluster is the anchor's cluster or one of its candidates."""
    own = assignment[anchors]
    theirs = assignment[partners]
    return (theirs == own) | (neighbours[own] == theirs[:, None]).any(dim=1)


def _cluster(x: torch.Tensor, num_clusters: int, m: int, iters: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device=x.device).manual_seed(seed)
    result = spherical_kmeans(x, num_clusters, iters, generator, precision="float32")
    return result.assignment, neighbour_table(result.centroids, m)


@torch.no_grad()
def bootstrap_diagnostics(
    first: torch.Tensor,
    second: torch.Tensor,
    num_clusters: int,
    neighbour_clusters: int,
    kmeans_iters: int = 10,
    seed: int = 0,
    draws: int = 8,
    speaker: torch.Tensor | None = None,
    session: torch.Tensor | None = None,
) -> dict[str, float]:
    """The statistics of the module docstring for embeddings `first`, `second` (N, D).

    `draws` partners per anchor average out the sampling noise of the pool statistics.
    `speaker`, `session` (N,) integer labels add the label-based rates.
    """
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"first and second must be two (N, D) tensors, got {tuple(first.shape)}, {tuple(second.shape)}")
    first = torch.nn.functional.normalize(first.float(), dim=1)
    second = torch.nn.functional.normalize(second.float(), dim=1)
    n = first.shape[0]
    m = max(neighbour_clusters, 1)
    a_assign, a_nb = _cluster(first, num_clusters, neighbour_clusters, kmeans_iters, diagnostic_start(seed, 0))
    b_assign, b_nb = _cluster(second, num_clusters, neighbour_clusters, kmeans_iters, diagnostic_start(seed, 1))
    s_assign, s_nb = _cluster(first, num_clusters, neighbour_clusters, kmeans_iters, diagnostic_start(seed, 2))
    assert a_nb.shape[1] == m
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.arange(n).repeat(draws)
    partners = torch.cat([draw_pool_partners(a_assign, a_nb, generator) for _ in range(draws)])
    keep = partners >= 0
    anchors, partners = anchors[keep], partners[keep]
    crop_agreed = relation_holds(b_assign, b_nb, anchors, partners)
    agreed = relation_holds(s_assign, s_nb, anchors, partners)  # what ssps_gate="agreement" keeps
    knn_first = nearest_neighbours(first, min(NEIGHBOURS, n - 1))
    knn_second = nearest_neighbours(second, min(NEIGHBOURS, n - 1))
    out = {
        "pool_agreement": float(crop_agreed.float().mean()),
        "seed_agreement": float(agreed.float().mean()),
        "mutual_knn": mutual_rate(knn_first),
        "crop_knn_overlap": overlap_rate(knn_first, knn_second),
        "pool_coverage": float(keep.float().mean()),
    }
    if speaker is not None:
        speaker = speaker.to(anchors.device)
        same = speaker[anchors] == speaker[partners]
        out["knn_same_speaker"] = float((speaker[knn_first] == speaker[:, None]).float().mean())
        out["pool_same_speaker"] = float(same.float().mean())
        out["agreed_same_speaker"] = float(same[agreed].float().mean()) if bool(agreed.any()) else float("nan")
        out["crop_agreed_same_speaker"] = float(same[crop_agreed].float().mean()) if bool(crop_agreed.any()) else float("nan")
    if session is not None:
        session = session.to(anchors.device)
        out["pool_same_session"] = float((session[anchors] == session[partners]).float().mean())
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

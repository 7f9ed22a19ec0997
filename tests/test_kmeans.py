"""Spherical k-means and neighbour table against loop oracles and analytic cases."""

import pytest
import torch
import torch.nn.functional as F

from ssps_trainers.estep import assign
from ssps_trainers.estep_certified import assign_certified
from ssps_trainers.kmeans import neighbour_table, spherical_kmeans
from ssps_trainers.ssps_diagnostics import normalized_mutual_info


def loop_kmeans(x: torch.Tensor, initial: torch.Tensor, iters: int):
    """docs/method.md §5 written with Python loops over rows and clusters."""
    centroids = [x[i].clone() for i in initial.tolist()]

    def e_step():
        out = []
        for row in x:
            sims = [float(row @ c) for c in centroids]
            out.append(max(range(len(sims)), key=lambda k: (sims[k], -k)))
        return out

    for _ in range(iters):
        labels = e_step()
        for k in range(len(centroids)):
            members = [x[i] for i, a in enumerate(labels) if a == k]
            if members:  # empty clusters keep their centroid
                total = torch.stack(members).sum(0)
                centroids[k] = total / total.norm()
    return torch.stack(centroids), torch.tensor(e_step())


@pytest.mark.parametrize("precision", ["float32", "certified", "auto"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_loop_oracle(seed: int, precision: str) -> None:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(120, 6, generator=g, dtype=torch.float64), dim=1).float()
    initial = torch.randperm(120, generator=g)[:7]
    result = spherical_kmeans(x, 7, 5, g, chunk_size=16, initial_rows=initial, precision=precision)
    centroids, labels = loop_kmeans(x, initial, 5)
    assert torch.equal(result.assignment, labels)
    torch.testing.assert_close(result.centroids, centroids, atol=1e-5, rtol=1e-5)
    assert torch.equal(result.counts, torch.bincount(labels, minlength=7))


def test_seeded_init_is_reproducible() -> None:
    x = F.normalize(torch.randn(200, 8), dim=1)
    a = spherical_kmeans(x, 10, 3, torch.Generator().manual_seed(5))
    b = spherical_kmeans(x, 10, 3, torch.Generator().manual_seed(5))
    assert torch.equal(a.assignment, b.assignment) and torch.equal(a.centroids, b.centroids)


def test_empty_cluster_keeps_its_centroid() -> None:
    e1, e2 = torch.eye(3)[0], torch.eye(3)[1]
    x = torch.stack([e1, e1, 0.8 * e1 + 0.6 * e2])
    result = spherical_kmeans(x, 2, 1, torch.Generator(), initial_rows=torch.tensor([0, 1]))
    # identical initial centroids: the tie sends every row to cluster 0 in the one M-step, so
    # cluster 1 is empty and keeps its centroid, cluster 0 moves to the normalised sum
    torch.testing.assert_close(result.centroids[1], e1)
    torch.testing.assert_close(result.centroids[0], F.normalize(x.sum(0), dim=0))


def test_separable_blobs_are_recovered() -> None:
    g = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(5, 32, generator=g), dim=1)
    truth = torch.arange(5).repeat_interleave(60)
    x = F.normalize(directions[truth] + 0.05 * torch.randn(300, 32, generator=g), dim=1)
    checked = 0
    for seed in range(8):
        generator = torch.Generator().manual_seed(seed)
        initial = torch.randperm(300, generator=torch.Generator().manual_seed(seed))[:10]
        if truth[initial].unique().numel() < 5:
            continue  # a blob without a starting row cannot be recovered by any k-means
        result = spherical_kmeans(x, 10, 10, generator)
        # every cluster is pure: each holds points of a single blob
        for k in result.assignment.unique():
            assert truth[result.assignment == k].unique().numel() == 1
        checked += 1
    assert checked > 0


def test_too_many_clusters_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="num_clusters=11 for 10 filled rows"):
        spherical_kmeans(torch.randn(10, 4), 11, 1, torch.Generator())


def test_certified_e_step_is_exact_where_bf16_is_not() -> None:
    """Rows placed between two centroids with a margin (1e-3) far above fp32 rounding but below
    bf16's: the plain bf16 E-step gets some wrong, the certified one matches float64 exactly,
    including duplicated centroids (ties go to the first, as argmax)."""
    g = torch.Generator().manual_seed(0)
    c = F.normalize(torch.randn(64, 48, generator=g, dtype=torch.float64), dim=1)
    c[5] = c[4]  # an exact tie
    pairs = torch.randint(0, 64, (2000, 2), generator=g)
    lean = 1e-3 * torch.randn(2000, 1, generator=g, dtype=torch.float64)
    near_tie = (0.5 + lean) * c[pairs[:, 0]] + (0.5 - lean) * c[pairs[:, 1]]
    x = F.normalize(torch.cat([near_tie, torch.randn(1000, 48, generator=g, dtype=torch.float64)]), dim=1)
    truth = (x @ c.T).argmax(1)
    x32, c32 = x.float(), c.float()
    assert not torch.equal(assign(x32, c32, score_dtype=torch.bfloat16), truth)  # the case is hard
    assert torch.equal(assign_certified(x32, c32, chunk_size=257), truth)
    assert torch.equal(assign_certified(x32, c32), assign(x32, c32))


def test_unknown_precision_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        spherical_kmeans(torch.randn(10, 4), 2, 1, torch.Generator(), precision="tf32")


def test_assign_chunking_is_exact() -> None:
    x, c = torch.randn(101, 5), torch.randn(9, 5)
    assert torch.equal(assign(x, c, chunk_size=7), (x @ c.T).argmax(1))


@pytest.mark.parametrize("m", [0, 1, 3])
def test_neighbour_table_matches_loop(m: int) -> None:
    g = torch.Generator().manual_seed(m)
    centroids = F.normalize(torch.randn(23, 4, generator=g), dim=1)
    table = neighbour_table(centroids, m, chunk_size=5)
    for c in range(23):
        if m == 0:
            assert table[c].tolist() == [c]
            continue
        sims = [(float(centroids[c] @ centroids[o]), o) for o in range(23) if o != c]
        expected = [o for _, o in sorted(sims, reverse=True)[:m]]
        assert table[c].tolist() == expected
        assert c not in table[c].tolist()


def test_neighbour_table_validates_m() -> None:
    with pytest.raises(ValueError, match="num_neighbours"):
        neighbour_table(torch.randn(4, 3), 4)


def test_nmi_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 12, (500,), generator=g)
        b = (a // 3 + torch.randint(0, 2, (500,), generator=g)) * 7  # non-contiguous ids
        expected = metrics.normalized_mutual_info_score(a.numpy(), b.numpy())
        assert normalized_mutual_info(a, b) == pytest.approx(expected, abs=1e-10)
    assert normalized_mutual_info(torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)) == 1.0


def test_certified_e_step_forced_for_every_k_up_to_300_and_large_ones() -> None:
    """The certified path on any CPU (forced, not through `auto`), for every K in 1..300 (K not a
    multiple of the 64-column lane width pads the score block: padding columns must never be
    read as centroids) and a few large K, against the float64 argmax; rows include near-ties
    1e-3 apart, which bf16 alone cannot separate."""
    g = torch.Generator().manual_seed(17)
    for k in [*range(1, 301), 517, 1000, 2049]:
        c = F.normalize(torch.randn(k, 16, generator=g, dtype=torch.float64), dim=1)
        pairs = torch.randint(0, k, (60, 2), generator=g)
        lean = 1e-3 * torch.randn(60, 1, generator=g, dtype=torch.float64)
        near = (0.5 + lean) * c[pairs[:, 0]] + (0.5 - lean) * c[pairs[:, 1]]
        x = F.normalize(torch.cat([near, torch.randn(60, 16, generator=g, dtype=torch.float64)]), dim=1)
        truth = (x @ c.T).argmax(1)
        got = assign_certified(x.float(), c.float(), chunk_size=37)
        assert torch.equal(got, truth), f"K={k}: {int((got != truth).sum())} rows differ"

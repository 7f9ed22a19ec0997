"""SSPS sampling, substitution, clustering and diagnostics against loop oracles (docs/method.md §7, §17)."""

import pytest
import torch
import torch.nn.functional as F

from ssps_trainers.ssps import SSPS, SampledPositives, SSPSArguments


def make_args(**overrides) -> SSPSArguments:
    base = dict(start_epoch=1, num_clusters=6, kmeans_iters=5, queue_size=40, neighbour_clusters=1)
    base.update(overrides)
    return SSPSArguments(**base)


def filled_ssps(args: SSPSArguments, num_samples: int = 60, n_pos: int = 2, dim: int = 8, seed: int = 0):
    """An SSPS whose table holds every sample and whose queue holds the last `queue_size`."""
    g = torch.Generator().manual_seed(seed)
    ssps = SSPS(num_samples, dim, (n_pos, 5), args)
    centres = F.normalize(torch.randn(4, dim, generator=g), dim=1)
    speaker = torch.arange(num_samples) % 4
    reference = F.normalize(centres[speaker] + 0.3 * torch.randn(num_samples, dim, generator=g), dim=1)
    order = torch.randperm(num_samples, generator=g)
    for chunk in order.split(16):
        ssps.push(chunk, reference[chunk], torch.randn(n_pos, chunk.numel(), 5, generator=g))
    if args.sampling != "knn":
        ssps.refresh(epoch=1)
    return ssps, reference, speaker


def candidate_pool(ssps: SSPS, cluster: int) -> list[int]:
    """Loop oracle: current, clustered queue slots whose sample is in `cluster`."""
    pool = []
    for slot in range(ssps.queue.capacity):
        index = int(ssps.queue.slot_index[slot])
        if index < 0 or int(ssps.queue.index_slot[index]) != slot:
            continue
        if int(ssps.assignment[index]) == cluster:
            pool.append(slot)
    return pool


@pytest.mark.parametrize("m", [0, 1, 2])
def test_sampling_support_and_coverage_match_the_oracle(m: int) -> None:
    ssps, _, _ = filled_ssps(make_args(neighbour_clusters=m))
    anchors = torch.arange(60)
    for step in range(5):
        sampled = ssps.sample(anchors, torch.Generator().manual_seed(step))
        for i in range(60):
            c = int(ssps.assignment[i])
            candidates = ssps.neighbours[c].tolist()
            pools = {cc: candidate_pool(ssps, cc) for cc in candidates}
            if m >= 1:
                assert c not in candidates  # docs/method.md §6: M >= 1 excludes the own cluster
            assert bool(sampled.eligible[i])
            if bool(sampled.valid[i]):
                slot = int(sampled.slots[i])
                chosen = [cc for cc in candidates if slot in pools[cc]]
                assert chosen, f"anchor {i}: slot {slot} outside every candidate pool"
                assert int(sampled.pool_size[i]) == len(pools[chosen[0]])
                assert int(ssps.queue.slot_index[slot]) != i
            else:
                # no candidate (docs/method.md §7): the drawn cluster's pool is empty, or the
                # uniform draw hit the anchor's own queue entry
                drew_itself = int(ssps.queue.slot_index[int(sampled.slots[i])]) == i
                assert drew_itself or any(not pools[cc] for cc in candidates)
                if drew_itself:
                    assert m == 0
        if m == 1:  # the candidate cluster is deterministic: validity is fully predictable
            for i in range(60):
                pool = candidate_pool(ssps, int(ssps.neighbours[int(ssps.assignment[i]), 0]))
                assert bool(sampled.valid[i]) == (len(pool) > 0)


def test_anchor_outside_the_table_falls_back() -> None:
    ssps, _, _ = filled_ssps(make_args(), num_samples=60)
    ssps.assignment[7] = -1  # e.g. an utterance never collected
    sampled = ssps.sample(torch.tensor([7, 8]), torch.Generator().manual_seed(0))
    assert not bool(sampled.valid[0]) and not bool(sampled.eligible[0])
    assert int(sampled.pool_size[0]) == 0


def test_own_cluster_with_m0_never_returns_the_anchor_itself() -> None:
    args = make_args(neighbour_clusters=0, num_clusters=60, queue_size=60, kmeans_iters=0)
    ssps, _, _ = filled_ssps(args, num_samples=60)
    # with K = N every sample is (almost always) alone in its cluster: only itself is a candidate
    sampled = ssps.sample(torch.arange(60), torch.Generator().manual_seed(0))
    partners = ssps.queue.slot_index[sampled.slots]
    assert not torch.any(sampled.valid & (partners == torch.arange(60)))
    singletons = torch.bincount(ssps.assignment, minlength=60)[ssps.assignment] == 1
    assert not torch.any(sampled.valid & singletons)


def test_draw_is_uniform_inside_the_cluster() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    ssps, _, _ = filled_ssps(make_args(num_clusters=3, neighbour_clusters=1, queue_size=60))
    anchor = 0
    target = int(ssps.neighbours[int(ssps.assignment[anchor]), 0])
    pool = candidate_pool(ssps, target)
    assert len(pool) >= 5
    draws = 6000
    sampled = ssps.sample(torch.full((draws,), anchor), torch.Generator().manual_seed(1))
    assert bool(sampled.valid.all())
    counts = torch.bincount(sampled.slots, minlength=ssps.queue.capacity)[pool]
    assert int(counts.sum()) == draws
    assert scipy_stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_exp_weighting_prefers_the_nearest_cluster() -> None:
    ssps, _, _ = filled_ssps(make_args(neighbour_clusters=3, weighting="exp", exp_lambda=2.0))
    ranks = ssps._draw_candidates(20000, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(ranks, minlength=3).float() / 20000
    expected = torch.exp(-2.0 * torch.arange(3.0))
    torch.testing.assert_close(frequencies, expected / expected.sum(), atol=0.02, rtol=0)


def test_sample_before_push_never_sees_the_current_batch() -> None:
    args = make_args(queue_size=16)
    ssps, reference, _ = filled_ssps(args, num_samples=60)
    batch = torch.tensor([50, 51, 52, 53])
    recent = set(ssps.queue.slot_index.tolist())
    sampled = ssps.sample(batch, torch.Generator().manual_seed(0))  # 1. sample
    used = set(ssps.queue.slot_index[sampled.slots[sampled.valid]].tolist())
    assert used <= recent
    ssps.push(batch, reference[batch], torch.zeros(2, 4, 5))  # 4. push afterwards
    assert set(batch.tolist()) <= set(ssps.queue.slot_index.tolist())


def test_substitute_returns_a_new_tensor() -> None:
    ssps, _, _ = filled_ssps(make_args())
    positives = torch.randn(2, 6, 5)
    before = positives.clone()
    valid = torch.tensor([True, False, True, False, True, True])
    sampled = SampledPositives(torch.tensor([0, 1, 2, 3, 4, 5]), valid, valid, valid.long(), valid)
    used = ssps.substitute(positives, sampled)
    assert torch.equal(positives, before)
    assert torch.equal(used[:, ~valid], positives[:, ~valid])
    assert torch.equal(used[:, valid], ssps.queue.values[:, torch.tensor([0, 2, 4, 5])])


def test_centroid_variant() -> None:
    args = make_args(sampling="kmeans-centroid")
    with pytest.raises(ValueError, match="positive_shape"):
        SSPS(60, 8, (2, 5), args)
    ssps = SSPS(60, 8, (1, 8), args)
    g = torch.Generator().manual_seed(0)
    reference = F.normalize(torch.randn(60, 8, generator=g), dim=1)
    ssps.push(torch.arange(60), reference, reference[None])
    ssps.refresh(1)
    sampled = ssps.sample(torch.arange(60), g)
    assert bool(sampled.valid.all())
    used = ssps.substitute(torch.zeros(1, 60, 8), sampled)
    expected_clusters = ssps.neighbours[ssps.assignment, 0]
    assert torch.equal(used[0], ssps.centroids[expected_clusters])


@pytest.mark.parametrize("k", [1, 3])
def test_knn_matches_the_oracle(k: int) -> None:
    args = SSPSArguments(start_epoch=1, sampling="knn", knn_k=k, queue_size=30)
    ssps, reference, _ = filled_ssps(args, num_samples=40)
    ssps.knn_chunk_elements = 7 * 5  # chunks of 7 FIFO entries for a batch of 5
    anchors = torch.tensor([0, 5, 17, 33, 39])
    query = reference[anchors]
    sampled = ssps.sample(anchors, torch.Generator().manual_seed(0), reference=query)
    for row, i in enumerate(anchors.tolist()):
        scores = []
        for slot in range(30):
            owner = int(ssps.queue.slot_index[slot])
            if owner >= 0 and owner != i:
                scores.append((float(query[row] @ ssps.queue_reference[slot]), slot))
        top = [slot for _, slot in sorted(scores, reverse=True)[:k]]
        assert bool(sampled.valid[row])
        assert int(sampled.slots[row]) in top
        if k == 1:
            assert int(sampled.slots[row]) == top[0]
    with pytest.raises(ValueError, match="reference"):
        ssps.sample(anchors, torch.Generator())


def test_metrics_against_the_oracle() -> None:
    ssps, _, speaker = filled_ssps(make_args())
    video = torch.arange(60) % 7
    anchors = torch.arange(0, 60, 3)
    sampled = ssps.sample(anchors, torch.Generator().manual_seed(3))
    before = ssps.metrics(anchors, sampled)
    assert torch.isnan(before["ssps/same_speaker_rate"])
    ssps.set_labels(speaker, video)
    metrics = ssps.metrics(anchors, sampled)
    valid = sampled.valid.tolist()
    partners = [int(ssps.queue.slot_index[s]) for s in sampled.slots.tolist()]
    pairs = [(int(a), p) for a, p, v in zip(anchors, partners, valid) if v]
    assert float(metrics["ssps/coverage"]) == pytest.approx(len(pairs) / len(anchors))
    same_speaker = sum(int(speaker[a]) == int(speaker[p]) for a, p in pairs) / len(pairs)
    same_video = sum(int(video[a]) == int(video[p]) for a, p in pairs) / len(pairs)
    assert float(metrics["ssps/same_speaker_rate"]) == pytest.approx(same_speaker)
    assert float(metrics["ssps/same_video_rate"]) == pytest.approx(same_video)
    pool = sum(int(p) for p in sampled.pool_size) / len(anchors)
    assert float(metrics["ssps/pool_size"]) == pytest.approx(pool)


def test_refresh_stats_and_nmi() -> None:
    ssps, _, speaker = filled_ssps(make_args(num_clusters=4, log_nmi=True))
    ssps.set_labels(speaker, None)
    stats = ssps.refresh(epoch=2)
    assert int(ssps.clustered_epoch) == 2
    assert stats["ssps/clustered_rows"] == 60
    assert stats["ssps/nmi_speaker"] > 0.5  # four well separated speakers
    assert "ssps/nmi_video" not in stats


def test_refresh_needs_enough_filled_rows() -> None:
    ssps = SSPS(100, 4, (1, 4), make_args(num_clusters=10))
    ssps.push(torch.arange(5), F.normalize(torch.randn(5, 4), dim=1), torch.randn(1, 5, 4))
    with pytest.raises(ValueError, match="num_clusters=10 for 5 filled rows"):
        ssps.refresh(1)


def test_refresh_is_seeded_by_epoch() -> None:
    a, _, _ = filled_ssps(make_args(), seed=0)
    b, _, _ = filled_ssps(make_args(), seed=0)
    a.refresh(5)
    b.refresh(5)
    assert torch.equal(a.assignment, b.assignment)


def test_schedule_predicates() -> None:
    ssps = SSPS(10, 4, (1, 4), make_args(start_epoch=3, num_clusters=2))
    assert [ssps.collecting(e) for e in range(5)] == [False, False, True, True, True]
    assert [ssps.active(e) for e in range(5)] == [False, False, False, True, True]


def test_state_round_trip_gives_identical_draws() -> None:
    ssps, _, _ = filled_ssps(make_args())
    copy = SSPS(60, 8, (2, 5), make_args())
    copy.load_state_dict(ssps.state_dict(), strict=True)
    anchors = torch.arange(60)
    a = ssps.sample(anchors, torch.Generator().manual_seed(9))
    b = copy.sample(anchors, torch.Generator().manual_seed(9))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    keys = set(ssps.state_dict())
    assert "speaker_labels" not in keys and "queue.values" in keys and "table.values" in keys
    fresh = SSPS(60, 8, (2, 5), make_args())
    assert set(fresh.state_dict()) == keys  # fixed at construction
    with pytest.raises(RuntimeError):
        SSPS(60, 8, (2, 5), make_args(queue_size=41)).load_state_dict(ssps.state_dict())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sampling": "kmeans"}, "'kmeans'"),
        ({"weighting": "linear"}, "'linear'"),
        ({"kmeans_mode": "all"}, "'all'"),
        ({"queue_dtype": "int8"}, "'int8'"),
        ({"neighbour_clusters": 6}, "neighbour_clusters"),
        ({"knn_k": 5}, "knn_k=5"),
        ({"sampling": "knn"}, "knn_k"),
        ({"queue_size": 0}, "queue_size"),
        ({"exp_lambda": 0.0}, "exp_lambda"),
        ({"start_epoch": -1}, "start_epoch"),
    ],
)
def test_arguments_are_validated(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_args(**overrides)


def test_half_precision_queue() -> None:
    args = make_args(queue_dtype="bfloat16")
    ssps, _, _ = filled_ssps(args)
    assert ssps.queue.values.dtype == torch.bfloat16
    sampled = ssps.sample(torch.arange(4), torch.Generator().manual_seed(0))
    assert ssps.substitute(torch.zeros(2, 4, 5), sampled).dtype == torch.float32


def test_agreement_gate_keeps_exactly_the_pairs_the_second_clustering_relates() -> None:
    """Loop oracle: with the gate, a drawn pair is used iff the partner's cluster in the second
    clustering is the anchor's or one of its candidates; without it the draws are identical."""
    gated, _, speaker = filled_ssps(make_args(gate="agreement", num_clusters=8))
    plain, _, _ = filled_ssps(make_args(num_clusters=8))
    assert torch.equal(gated.assignment, plain.assignment)  # the paper clustering is unchanged
    assert not torch.equal(gated.check_assignment, gated.assignment)  # another start
    assert 0.0 <= float(gated.agreement) <= 1.0 and float(gated.agreement) == float(plain.agreement)
    anchors = torch.arange(60)
    kept = drawn = 0
    for step in range(6):
        a = gated.sample(anchors, torch.Generator().manual_seed(step))
        b = plain.sample(anchors, torch.Generator().manual_seed(step))
        assert torch.equal(a.slots, b.slots) and torch.equal(a.drawn, b.valid)
        for i in range(60):
            partner = int(gated.queue.slot_index[a.slots[i]])
            own = int(gated.check_assignment[i])
            related = bool(a.drawn[i]) and int(gated.check_assignment[partner]) in {own, *gated.check_neighbours[own].tolist()}
            assert bool(a.valid[i]) == related
        kept += int(a.valid.sum())
        drawn += int(a.drawn.sum())
        metrics = gated.metrics(anchors, a)
        assert float(metrics["ssps/gate_pass_rate"]) == pytest.approx(int(a.valid.sum()) / int(a.drawn.sum()))
    assert 0 < kept < drawn


def test_gate_state_round_trip_and_loading_ungated_stores() -> None:
    gated, _, _ = filled_ssps(make_args(gate="agreement"))
    again = SSPS(60, 8, (2, 5), make_args(gate="agreement"))
    again.load_stores(gated.state_dict())
    draw = lambda s: s.sample(torch.arange(60), torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.equal(draw(again).valid, draw(gated).valid)
    # stores of a filling pass (never clustered, no gate) load into a gated run: refresh fills the rest
    fill = SSPS(60, 8, (2, 5), make_args())
    fill.push(torch.arange(60), F.normalize(torch.randn(60, 8), dim=1), torch.randn(2, 60, 5))
    fresh = SSPS(60, 8, (2, 5), make_args(gate="agreement"))
    fresh.load_stores(fill.state_dict())
    fresh.refresh(epoch=1)
    assert (fresh.check_assignment >= 0).all()
    # ...but clustered stores without the gate's clustering would gate on nothing: refused
    plain, _, _ = filled_ssps(make_args())
    with pytest.raises(KeyError, match="ssps_gate"):
        SSPS(60, 8, (2, 5), make_args(gate="agreement")).load_stores(plain.state_dict())
    # and a gated run's stores resume a run without the gate only before any clustering
    SSPS(60, 8, (2, 5), make_args()).load_stores({**fill.state_dict(), "check_assignment": torch.zeros(60, dtype=torch.long),
                                                   "check_neighbours": torch.zeros(6, 1, dtype=torch.long)})  # fmt: skip
    with pytest.raises(RuntimeError, match="Unexpected"):
        SSPS(60, 8, (2, 5), make_args()).load_stores(gated.state_dict())


def test_gate_needs_representation_sampling() -> None:
    with pytest.raises(ValueError, match="gate"):
        make_args(gate="agreement", sampling="kmeans-centroid")
    with pytest.raises(ValueError, match="gate"):
        make_args(gate="sometimes")


@pytest.mark.parametrize("seed", range(6))
def test_grouping_only_the_chosen_clusters_gives_the_full_grouping(seed: int) -> None:
    """The CPU path checks and sorts only the slots of chosen clusters; its groups must equal the
    full stable sort's (the GPU path) and a loop oracle, with empty slots, stale slots (a sample
    pushed again), unclustered samples, and (seed 0) an empty queue."""
    from ssps_trainers import ssps_sampling
    from ssps_trainers.memory import RingQueue

    g = torch.Generator().manual_seed(seed)
    num_samples, num_clusters, capacity = 30, 5 + seed, 6 + 5 * seed
    queue = RingQueue(capacity, (1, 2), num_samples)
    for _ in range(seed):  # seed 0: nothing pushed; repeated indices leave stale slots
        batch = torch.randint(0, num_samples, (4 + seed,), generator=g)
        queue.push(batch, torch.randn(1, batch.numel(), 2, generator=g))
    assignment = torch.randint(-1, num_clusters, (num_samples,), generator=g)  # -1: not clustered
    chosen = torch.randint(0, num_clusters, (9,), generator=g)
    oracle = {}
    for slot in range(capacity):
        index = int(queue.slot_index[slot])
        if index >= 0 and int(queue.index_slot[index]) == slot and int(assignment[index]) >= 0:
            oracle.setdefault(int(assignment[index]), []).append(slot)
    for only_chosen in (False, True):
        order, counts = ssps_sampling.group_by_cluster(queue, assignment, chosen, num_clusters, only_chosen)
        starts = torch.cumsum(counts, 0) - counts
        for c in chosen.tolist():
            assert order[starts[c] : starts[c] + counts[c]].tolist() == oracle.get(c, []), (only_chosen, c)


def test_sampling_is_the_same_on_both_grouping_paths(monkeypatch) -> None:
    from ssps_trainers import ssps_sampling

    ssps, _, _ = filled_ssps(make_args(neighbour_clusters=1))
    anchors = torch.arange(60)
    draws = {}
    for only_chosen in (False, True):
        grouping = ssps_sampling.group_by_cluster
        monkeypatch.setattr(ssps_sampling, "group_by_cluster",
                            lambda q, a, c, k, only_chosen, _o=only_chosen, _g=grouping: _g(q, a, c, k, _o))  # fmt: skip
        draws[only_chosen] = ssps.sample(anchors, torch.Generator().manual_seed(3))
        monkeypatch.undo()
    full, part = draws[False], draws[True]
    assert torch.equal(full.valid, part.valid) and torch.equal(full.pool_size, part.pool_size)
    assert torch.equal(full.slots[full.valid], part.slots[part.valid])
    assert bool(full.valid.any())

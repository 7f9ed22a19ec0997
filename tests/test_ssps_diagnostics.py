"""Label-free bootstrap diagnostics: loop oracles for each vectorised piece, and planted
clusters with a known speaker purity (strong vs. weak bootstraps)."""

import pytest
import torch
import torch.nn.functional as F

from ssps_trainers.ssps_diagnostics import (
    bootstrap_diagnostics,
    draw_pool_partners,
    mutual_rate,
    nearest_neighbours,
    overlap_rate,
    relation_holds,
)


def test_nearest_neighbours_match_a_loop_and_skip_self() -> None:
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(37, 8, generator=g), dim=1)
    found = nearest_neighbours(x, 5, block=7)  # several blocks, one partial
    for i in range(37):
        others = [(float(x[i] @ x[j]), j) for j in range(37) if j != i]
        expected = [j for _, j in sorted(others, reverse=True)[:5]]
        assert found[i].tolist() == expected
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(x, 37)


def test_mutual_and_overlap_rates_match_loops() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.stack([torch.randperm(12, generator=g)[:3] for _ in range(12)])
    b = torch.stack([torch.randperm(12, generator=g)[:3] for _ in range(12)])
    mutual = sum(i in a[j].tolist() for i in range(12) for j in a[i].tolist()) / a.numel()
    overlap = sum(len(set(a[i].tolist()) & set(b[i].tolist())) for i in range(12)) / a.numel()
    assert mutual_rate(a) == pytest.approx(mutual)
    assert overlap_rate(a, b) == pytest.approx(overlap)
    # analytic: a symmetric 1-NN pairing is fully mutual, identical lists overlap fully
    pairs = torch.tensor([[1], [0], [3], [2]])
    assert mutual_rate(pairs) == 1.0 and overlap_rate(pairs, pairs) == 1.0


def test_pool_partners_come_from_a_candidate_cluster_uniformly() -> None:
    assignment = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    neighbours = torch.tensor([[1, 2], [0, 3], [3, 0], [3, 3]])  # cluster 3 points at itself
    g = torch.Generator().manual_seed(2)
    draws = torch.stack([draw_pool_partners(assignment, neighbours, g) for _ in range(3000)])  # 3000 x 8 draws
    for i in range(8):
        pool = {j for c in neighbours[assignment[i]].tolist() for j in range(8) if assignment[j] == c and j != i}
        drawn = draws[:, i]
        assert set(drawn[drawn >= 0].tolist()) <= pool
    # anchor 7 is alone in cluster 3, its only candidate: never a partner of itself
    assert (draws[:, 7] == -1).all()
    # anchor 0: rank 0 -> cluster 1 (rows 2, 3, 4), rank 1 -> cluster 2 (rows 5, 6): 1/6 and 1/4 each
    counts = torch.bincount(draws[:, 0], minlength=8).float() / 3000
    assert torch.allclose(counts[2:5], torch.full((3,), 1 / 6), atol=0.03)
    assert torch.allclose(counts[5:7], torch.full((2,), 1 / 4), atol=0.03)


def test_relation_holds_matches_a_loop() -> None:
    assignment = torch.tensor([0, 1, 2, 2, 3])
    neighbours = torch.tensor([[1], [0], [3], [0]])
    anchors, partners = torch.tensor([0, 0, 1, 2, 3, 4]), torch.tensor([1, 2, 0, 3, 4, 0])
    expected = [int(assignment[p]) in {int(assignment[a]), *neighbours[assignment[a]].tolist()} for a, p in zip(anchors, partners)]
    assert relation_holds(assignment, neighbours, anchors, partners).tolist() == expected == [True, False, True, True, True, True]


def planted(noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """20 speakers x 12 utterances around unit speaker centres, two crops with independent noise."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(20, 32, generator=g), dim=1)
    speaker = torch.arange(20).repeat_interleave(12)
    first = centres[speaker] + noise * torch.randn(240, 32, generator=g) / 32**0.5
    second = centres[speaker] + noise * torch.randn(240, 32, generator=g) / 32**0.5
    return first, second, speaker


def test_planted_clusters_strong_bootstrap_agrees_and_is_pure() -> None:
    first, second, speaker = planted(0.2)
    # two clusters per speaker, M = 1: the nearest other cluster is the speaker's other half
    # where k-means split the speaker in two; random starts also merge and split speakers, so
    # about half the pools are pure, and the agreement across starts estimates exactly that
    stats = bootstrap_diagnostics(first, second, 40, 1, speaker=speaker, session=speaker)
    assert stats["knn_same_speaker"] > 0.95 and stats["mutual_knn"] > 0.8 and stats["crop_knn_overlap"] > 0.8
    assert stats["pool_same_speaker"] > 0.45
    assert abs(stats["seed_agreement"] - stats["pool_same_speaker"]) < 0.1
    assert stats["agreed_same_speaker"] > 0.85  # the gate keeps the pure pairs
    assert stats["pool_same_session"] == stats["pool_same_speaker"]  # one session per speaker here


def test_agreement_falls_with_purity_and_the_gate_raises_purity() -> None:
    """Noise sweeps the bootstrap from strong to useless: the label-free statistics follow the
    true same-speaker rate, and the pairs the gate keeps are purer than the ungated pool."""
    rows = []
    for noise in (0.2, 1.0, 1.6, 4.0):
        first, second, speaker = planted(noise, seed=3)
        rows.append(bootstrap_diagnostics(first, second, 40, 1, speaker=speaker))
    purity = [r["pool_same_speaker"] for r in rows]
    agreement = [r["seed_agreement"] for r in rows]
    assert purity[0] > 0.4 and purity[-1] < 0.15  # strong (2 clusters per speaker) vs chance (0.05)
    assert agreement[0] > agreement[-1] + 0.2
    assert rows[0]["crop_knn_overlap"] > rows[-1]["crop_knn_overlap"] + 0.3
    for r in rows[:3]:
        assert r["agreed_same_speaker"] > r["pool_same_speaker"]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="two \\(N, D\\) tensors"):
        bootstrap_diagnostics(torch.randn(10, 4), torch.randn(9, 4), 2, 1)


def test_verdict_reads_its_statistic_against_the_threshold() -> None:
    from ssps_trainers.ssps_diagnostics import VERDICT_STATISTIC, VERDICT_THRESHOLD, paper_ssps_recommended

    assert paper_ssps_recommended({VERDICT_STATISTIC: VERDICT_THRESHOLD})
    assert not paper_ssps_recommended({VERDICT_STATISTIC: VERDICT_THRESHOLD - 1e-3})
    first, second, speaker = planted(4.0, seed=5)  # a useless bootstrap: the gate is recommended
    assert not paper_ssps_recommended(bootstrap_diagnostics(first, second, 40, 1))


def test_trainer_warns_when_an_ungated_run_has_a_weak_bootstrap(caplog) -> None:
    """SSPSEpochCallback logs the refresh statistics, and warns below MIN_SEED_AGREEMENT when
    the paper's SSPS (no gate) is running; with the gate, or above it, it stays quiet."""
    import logging
    from types import SimpleNamespace

    from transformers.utils import logging as hf_logging

    from ssps_trainers.callbacks import SSPSEpochCallback
    from ssps_trainers.ssps_diagnostics import MIN_SEED_AGREEMENT

    hf_logging.enable_propagation()
    for gate, agreement, warned in (("none", MIN_SEED_AGREEMENT - 0.1, True), ("agreement", 0.05, False), ("none", 0.9, False)):
        logged = []
        fake = SimpleNamespace(args=SimpleNamespace(gate=gate), active=lambda e: True, clustered_epoch=torch.tensor(-1),
                               refresh=lambda e, a=agreement: {"ssps/seed_agreement": a})  # fmt: skip
        callback = SSPSEpochCallback(fake, steps_per_epoch=4, log=logged.append)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            callback.on_step_begin(None, SimpleNamespace(global_step=8), None)
        assert logged == [{"ssps/seed_agreement": agreement}]
        assert ("bootstrap is weak" in caplog.text) == warned

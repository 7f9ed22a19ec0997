"""EER/minDCF: hand-computed cases, a brute-force threshold sweep, and evaluate-module parity."""

from pathlib import Path

import numpy as np
import pytest

from ssps_trainers.metrics import cosine_scores, equal_error_rate, error_rates, min_dcf

REPO_ROOT = Path(__file__).resolve().parents[1]


def brute_force(scores, labels, p_target=0.01):
    """One Python loop over candidate thresholds: the obvious definition."""
    scores = [float(s) for s in scores]
    labels = [int(x) for x in labels]
    n_tar = sum(labels)
    n_non = len(labels) - n_tar
    candidates = sorted(set(scores)) + [float("inf")]
    best_gap, eer, eer_t = None, None, None
    best_cost, dcf_t = None, None
    for t in candidates:
        fnr = sum(1 for s, y in zip(scores, labels) if y == 1 and s < t) / n_tar
        fpr = sum(1 for s, y in zip(scores, labels) if y == 0 and s >= t) / n_non
        gap = abs(fnr - fpr)
        if best_gap is None or gap < best_gap:
            best_gap, eer, eer_t = gap, max(fnr, fpr), t
        cost = p_target * fnr + (1 - p_target) * fpr
        if best_cost is None or cost < best_cost:
            best_cost, dcf_t = cost, t
    return eer, eer_t, best_cost / min(p_target, 1 - p_target), dcf_t


def test_perfect_separation() -> None:
    scores, labels = [0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]
    assert equal_error_rate(scores, labels) == (0.0, 0.8)
    assert min_dcf(scores, labels, 0.01)[0] == 0.0


def test_perfectly_inverted() -> None:
    eer, _ = equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert eer == 1.0


def test_hand_computed_case() -> None:
    # sorted: 0.1(n) 0.2(t) 0.3(n) 0.4(t) 0.5(n) 0.6(t); 3 targets, 3 non-targets
    scores = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    labels = [1, 0, 1, 0, 1, 0]
    rates = error_rates(scores, labels)
    np.testing.assert_allclose(rates.fnr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(rates.fpr, [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])
    # |fnr - fpr| = [1, 2/3, 1/3, 0, 1/3, 2/3, 1]: zero at threshold 0.4
    assert equal_error_rate(scores, labels) == pytest.approx((1 / 3, 0.4))
    # p = 0.5: cost / 0.5 = fnr + fpr = [1, 2/3, 1, 2/3, 1, 2/3, 1]: first minimum at 0.2
    assert min_dcf(scores, labels, 0.5) == pytest.approx((2 / 3, 0.2))


def test_ties_share_one_threshold() -> None:
    # all scores equal: only "accept all" (fnr 0, fpr 1) or "reject all" (fnr 1, fpr 0)
    eer, threshold = equal_error_rate([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])
    assert eer == 1.0 and threshold == 0.5
    scores = [0.7, 0.5, 0.5, 0.5, 0.2]
    labels = [1, 1, 0, 0, 0]
    rates = error_rates(scores, labels)
    np.testing.assert_allclose(rates.thresholds, [0.2, 0.5, 0.7, np.inf])
    np.testing.assert_allclose(rates.fnr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(rates.fpr, [1, 2 / 3, 0, 0])


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.normal(labels * rng.uniform(0, 2), 1.0)
    if seed % 3 == 0:
        scores = np.round(scores, 1)  # many ties
    eer, eer_t, dcf, dcf_t = brute_force(scores, labels, 0.01)
    got_eer, got_eer_t = equal_error_rate(scores, labels)
    got_dcf, got_dcf_t = min_dcf(scores, labels, 0.01)
    assert abs(got_eer - eer) < 1e-9 and got_eer_t == eer_t
    assert abs(got_dcf - dcf) < 1e-9 and got_dcf_t == dcf_t


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([], [], "at least one trial"),
        ([0.1, 0.2], [1, 1], "all 2 trials are target"),
        ([0.1, float("nan")], [1, 0], "finite"),
        ([0.1, 0.2], [1, 2], "labels must be 0"),
        ([0.1, 0.2], [1], "2 scores but 1 labels"),
    ],
)
def test_bad_input(scores, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        equal_error_rate(scores, labels)


def test_bad_cost_parameters() -> None:
    with pytest.raises(ValueError, match="p_target"):
        min_dcf([0.1, 0.2], [0, 1], p_target=1.5)


def test_cosine_scores() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(
        cosine_scores(embeddings, [0, 0, 2], [1, 2, 2]), [0.0, np.sqrt(0.5), 1.0]
    )


def test_evaluate_module_loads_offline_and_agrees() -> None:
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(str(REPO_ROOT / "metrics" / "speaker_verification"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 300)
        labels[:2] = [0, 1]
        scores = rng.normal(labels * 1.5, 1.0).astype(np.float32)
        result = metric.compute(predictions=scores, references=labels)
        eer, eer_t = equal_error_rate(scores, labels)
        assert result["eer"] == pytest.approx(eer, abs=1e-12)
        assert result["eer_threshold"] == pytest.approx(eer_t)
        for p in (0.01, 0.05):
            assert result[f"min_dcf_{p:g}"] == pytest.approx(min_dcf(scores, labels, p)[0], abs=1e-12)
        brute = brute_force(scores, labels, 0.05)
        assert abs(result["min_dcf_0.05"] - brute[2]) < 1e-9


def test_evaluate_module_keeps_float64_and_refuses_what_it_cannot_score() -> None:
    """Scores 1e-9 apart must not tie (a float32 cast flips this EER from 0 to 1), float labels
    that are not 0/1 are refused rather than truncated, and costs must be positive."""
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(str(REPO_ROOT / "metrics" / "speaker_verification"))
    scores = np.array([0.7 + 2e-9, 0.7 + 1e-9, 0.7, 0.7 - 1e-9])
    labels = np.array([1, 1, 0, 0])
    result = metric.compute(predictions=scores, references=labels)
    assert result["eer"] == equal_error_rate(scores, labels)[0] == 0.0
    assert result["min_dcf_0.01"] == pytest.approx(min_dcf(scores, labels, 0.01)[0], abs=1e-12)
    with pytest.raises(ValueError, match="labels must be 0"):
        metric.compute(predictions=[0.9, 0.1], references=[0.7, 0.0])
    for costs in ({"c_miss": 0.0}, {"c_fa": -1.0}):
        with pytest.raises(ValueError, match="positive cost"):
            metric.compute(predictions=[0.9, 0.1], references=[1, 0], **costs)

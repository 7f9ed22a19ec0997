"""Speaker-verification metrics: equal error rate and minimum detection cost (docs/method.md §14).

Convention. A trial is accepted when `score >= threshold`. Candidate thresholds are every
distinct score plus `+inf` (reject everything). At each, FNR = rejected targets / targets and
FPR = accepted non-targets / non-targets, computed for all thresholds at once from one sort and
cumulative sums; tied scores share one threshold, so ties never split. EER: at the first
threshold minimising |FNR - FPR|, EER = max(FPR, FNR). minDCF: the minimum over thresholds of
c_miss * p * FNR + c_fa * (1 - p) * FPR, divided by min(c_miss * p, c_fa * (1 - p)).
Values are fractions (model cards show %). numpy only: `metrics/speaker_verification` keeps a
self-contained copy of these lines for the `evaluate` module, and a test keeps them equal.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt


class ErrorRates(NamedTuple):
    """FNR and FPR at each candidate threshold (ascending; the last one is +inf)."""

    thresholds: npt.NDArray[np.float64]
    fnr: npt.NDArray[np.float64]
    fpr: npt.NDArray[np.float64]


def _validate(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    raw = np.asarray(labels).reshape(-1)
    if s.size == 0:
        raise ValueError("speaker-verification metrics need at least one trial, got none")
    if s.size != raw.size:
        raise ValueError(f"got {s.size} scores but {raw.size} labels")
    if not np.isfinite(s).all():
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"scores must be finite; trial {bad} has score {s[bad]!r}")
    if not np.isin(raw, (0, 1)).all():
        bad = int(np.flatnonzero(~np.isin(raw, (0, 1)))[0])
        raise ValueError(f"labels must be 0 (non-target) or 1 (target); trial {bad} has {raw[bad]!r}")
    y = raw.astype(np.int64)
    if y.min() == y.max():
        kind = "target" if y[0] == 1 else "non-target"
        raise ValueError(f"all {y.size} trials are {kind}: EER and minDCF need both classes")
    return s, y


def error_rates(scores: npt.ArrayLike, labels: npt.ArrayLike) -> ErrorRates:
    """FNR and FPR at every distinct score and at +inf, in O(n log n)."""
    s, y = _validate(scores, labels)
    order = np.argsort(s, kind="stable")
    sorted_scores, sorted_labels = s[order], y[order]
    # first position of each distinct score in the sorted array
    distinct, first = np.unique(sorted_scores, return_index=True)
    targets_below = np.concatenate([[0], np.cumsum(sorted_labels)])  # targets in sorted[:i]
    n_target = int(sorted_labels.sum())
    n_nontarget = s.size - n_target
    first = np.append(first, s.size)  # +inf rejects every trial
    thresholds = np.append(distinct, np.inf)
    rejected_targets = targets_below[first]
    rejected_nontargets = first - rejected_targets
    fnr = rejected_targets / n_target
    fpr = (n_nontarget - rejected_nontargets) / n_nontarget
    return ErrorRates(thresholds, fnr.astype(np.float64), fpr.astype(np.float64))


def equal_error_rate(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(EER as a fraction, threshold at which it is reached)."""
    rates = error_rates(scores, labels)
    index = int(np.argmin(np.abs(rates.fnr - rates.fpr)))
    return float(max(rates.fpr[index], rates.fnr[index])), float(rates.thresholds[index])


def min_dcf(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """(normalised minimum detection cost, threshold at which it is reached)."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target!r}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"c_miss and c_fa must be > 0, got c_miss={c_miss!r}, c_fa={c_fa!r}")
    rates = error_rates(scores, labels)
    cost = c_miss * p_target * rates.fnr + c_fa * (1.0 - p_target) * rates.fpr
    index = int(np.argmin(cost))
    default = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(cost[index] / default), float(rates.thresholds[index])


def cosine_scores(
    embeddings: npt.ArrayLike, enroll: npt.ArrayLike, test: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Cosine score of each trial (enroll[i], test[i]), rows of `embeddings` by index."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    a, b = np.asarray(enroll, dtype=np.int64), np.asarray(test, dtype=np.int64)
    return np.einsum("ij,ij->i", e[a], e[b])

"""Speaker-verification metric for 🤗 evaluate: EER and minDCF from trial scores.

Self-contained on purpose (an `evaluate` module or metric Space cannot import our package):
the maths below mirrors `ssps_trainers/metrics.py` line for line, and `tests/test_metrics.py` checks
that both agree. Convention (docs/method.md §14 of the SSPS toolkit): accept when score >= threshold;
thresholds are the distinct scores plus +inf; EER = max(FPR, FNR) at the first argmin of
|FNR - FPR|; minDCF = min(c_miss p FNR + c_fa (1 - p) FPR) / min(c_miss p, c_fa (1 - p)).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Equal error rate (EER) and normalised minimum detection cost function (minDCF) of a
speaker-verification system, from one score per trial (higher = more likely the same speaker)
and a 0/1 reference (1 = target trial: same speaker).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): one score per trial, e.g. a cosine similarity.
    references (`list` of `int`): 1 for a target (same-speaker) trial, 0 for a non-target.
    p_targets (`tuple` of `float`, defaults to (0.01, 0.05)): target priors of the minDCF.
    c_miss (`float`, defaults to 1.0): cost of a miss.
    c_fa (`float`, defaults to 1.0): cost of a false alarm.
Returns:
    eer (`float`): equal error rate, a fraction in [0, 1].
    eer_threshold (`float`): the score threshold at the EER.
    min_dcf_<p> (`float`): normalised minimum detection cost for each p in p_targets.
    min_dcf_<p>_threshold (`float`): the threshold reaching it.
Examples:
    >>> metric = evaluate.load("metrics/speaker_verification")
    >>> metric.compute(predictions=[0.9, 0.8, 0.3, 0.1], references=[1, 1, 0, 0])["eer"]
    0.0
"""

_CITATION = """
@article{lepage2025ssps,
  title={Self-Supervised Frameworks for Speaker Verification via Bootstrapped Positive Sampling},
  author={Lepage, Theo and Dehak, Reda},
  journal={IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  volume={33}, pages={2932--2945}, year={2025}
}
"""


def _error_rates(scores, labels):
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    raw = np.asarray(labels).reshape(-1)
    if s.size == 0:
        raise ValueError("speaker-verification metrics need at least one trial, got none")
    if s.size != raw.size:
        raise ValueError(f"got {s.size} scores but {raw.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not np.isin(raw, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    y = raw.astype(np.int64)
    if y.min() == y.max():
        raise ValueError("EER and minDCF need both target and non-target trials")
    order = np.argsort(s, kind="stable")
    sorted_scores, sorted_labels = s[order], y[order]
    distinct, first = np.unique(sorted_scores, return_index=True)
    targets_below = np.concatenate([[0], np.cumsum(sorted_labels)])
    n_target = int(sorted_labels.sum())
    n_nontarget = s.size - n_target
    first = np.append(first, s.size)
    thresholds = np.append(distinct, np.inf)
    rejected_targets = targets_below[first]
    rejected_nontargets = first - rejected_targets
    fnr = rejected_targets / n_target
    fpr = (n_nontarget - rejected_nontargets) / n_nontarget
    return thresholds, fnr, fpr


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeakerVerification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                # float64 both: scores 1e-9 apart must not tie, and a label 0.7 must be refused
                # by the 0/1 check rather than truncated to 0 by an integer cast
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
        for name, cost in (("c_miss", c_miss), ("c_fa", c_fa)):
            if not (np.isfinite(cost) and cost > 0):
                raise ValueError(f"{name} must be a positive cost, got {cost!r}")
        thresholds, fnr, fpr = _error_rates(predictions, references)
        index = int(np.argmin(np.abs(fnr - fpr)))
        result = {
            "eer": float(max(fpr[index], fnr[index])),
            "eer_threshold": float(thresholds[index]),
        }
        for p in p_targets:
            if not 0.0 < p < 1.0:
                raise ValueError(f"p_target must be in (0, 1), got {p!r}")
            cost = c_miss * p * fnr + c_fa * (1.0 - p) * fpr
            best = int(np.argmin(cost))
            result[f"min_dcf_{p:g}"] = float(cost[best] / min(c_miss * p, c_fa * (1.0 - p)))
            result[f"min_dcf_{p:g}_threshold"] = float(thresholds[best])
        return result

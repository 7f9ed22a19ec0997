"""Embedding and scoring for verification (docs/method.md §14): full-length utterances, batched by length
with attention masks (equal to one-by-one inference, see `modeling_ssps`), cosine scores,
EER / minDCF; optional S-norm / AS-norm against a cohort of unlabelled embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_ssps import SSPSConfig, SSPSForPreTraining, SSPSModel

from .data import audio_length, decode_audio
from .methods import eval_mode
from .metrics import cosine_scores, equal_error_rate, min_dcf


def load_evaluated_encoder(folder: str | Path, encoder: str = "auto") -> SSPSModel:
    """The encoder a saved folder is evaluated with (docs/method.md §11.2): an `SSPSModel` folder as is;
    from an `SSPSForPreTraining` folder the student (`"student"`; MoCo's query encoder) or the
    momentum teacher (`"teacher"`); `"auto"` picks the teacher for DINO."""
    if encoder not in ("auto", "student", "teacher"):
        raise ValueError(f"encoder must be 'auto', 'student' or 'teacher', got {encoder!r}")
    config = SSPSConfig.from_pretrained(folder)
    if not (config.architectures and "SSPSForPreTraining" in config.architectures):
        return SSPSModel.from_pretrained(folder)
    full = SSPSForPreTraining.from_pretrained(folder)
    teacher = encoder == "teacher" or (encoder == "auto" and config.head_type == "dino")
    if teacher and full.teacher is None:
        raise ValueError(f"{folder} has no teacher encoder")
    return full.teacher if teacher else full.student


def published_encoder(folder: str | Path, encoder: str = "auto") -> SSPSModel:
    """The evaluated encoder as it is published (export, demo): an `SSPSModel` whose config
    carries no SSL heads and no teacher."""
    model = load_evaluated_encoder(folder, encoder)
    model.config.architectures = ["SSPSModel"]
    model.config.head_type, model.config.has_teacher = "none", False
    return model


@torch.no_grad()
def embed_rows(
    encoder: SSPSModel,
    dataset: Any,
    rows: Sequence[int],
    batch_size: int = 16,
    max_batch_seconds: float = 120.0,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised embeddings (len(rows), D) of dataset rows at full length, in `rows` order.

    Rows are sorted by length and packed into batches of at most `batch_size` utterances and
    `max_batch_seconds` of padded audio, so padding stays small and memory bounded."""
    device = next(encoder.parameters()).device
    rate = encoder.config.sampling_rate
    lengths = {i: audio_length(dataset[i], rate) for i in rows}
    order = sorted(rows, key=lambda i: lengths[i])
    out = {}
    batches: list[list[int]] = [[]]
    for i in order:
        batch = batches[-1]
        if batch and (len(batch) >= batch_size or lengths[i] * (len(batch) + 1) > max_batch_seconds * rate):
            batches.append([i])
        else:
            batch.append(i)
    with eval_mode(encoder):
        for batch in tqdm(batches, desc="embedding", disable=not progress):
            waves = [torch.from_numpy(decode_audio(dataset[i], rate)) for i in batch]
            longest = max(w.shape[0] for w in waves)
            values = torch.zeros(len(batch), longest)
            mask = torch.zeros(len(batch), longest, dtype=torch.long)
            for k, wave in enumerate(waves):
                values[k, : wave.shape[0]] = wave
                mask[k, : wave.shape[0]] = 1
            embeddings = encoder(input_values=values.to(device), attention_mask=mask.to(device)).embeddings
            embeddings = torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu().numpy()
            out.update(zip(batch, embeddings))
    return np.stack([out[i] for i in rows])


def score_trials(
    embeddings: np.ndarray,
    names: Sequence[str],
    trials: Sequence[tuple[int, str, str]],
    cohort: np.ndarray | None = None,
    norm: str = "none",
    top_k: int = 300,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels of `trials` (label, enroll, test) over named embeddings.

    norm: "none"; "snorm" (symmetric normalisation against the whole cohort); "asnorm"
    (adaptive: mean/std of each side's top_k cohort scores)."""
    position = {name: i for i, name in enumerate(names)}
    missing = sorted({u for _, a, b in trials for u in (a, b) if u not in position})
    if missing:
        raise ValueError(f"{len(missing)} trial utterances have no embedding, e.g. {missing[:5]}")
    enroll = np.array([position[a] for _, a, _ in trials])
    test = np.array([position[b] for _, _, b in trials])
    labels = np.array([int(label) for label, _, _ in trials])
    scores = cosine_scores(embeddings, enroll, test)
    if norm == "none":
        return scores, labels
    if norm not in ("snorm", "asnorm"):
        raise ValueError(f"norm must be 'none', 'snorm' or 'asnorm', got {norm!r}")
    if cohort is None or len(cohort) == 0:
        raise ValueError(f"{norm} needs a cohort of embeddings")
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    against = e @ c.T  # (utterances, cohort)
    if norm == "asnorm":
        k = min(top_k, against.shape[1])
        against = -np.sort(-against, axis=1)[:, :k]
    mean, std = against.mean(axis=1), against.std(axis=1) + 1e-9
    normalised = 0.5 * ((scores - mean[enroll]) / std[enroll] + (scores - mean[test]) / std[test])
    return normalised, labels


def verification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """EER (%) and minDCF at p = 0.01 and 0.05 with the cosine thresholds reaching them (the
    calibrated decision thresholds `export_to_hub.py --threshold_from` writes into a config)."""
    eer, threshold = equal_error_rate(scores, labels)
    dcf_01, threshold_01 = min_dcf(scores, labels, 0.01)
    dcf_05, threshold_05 = min_dcf(scores, labels, 0.05)
    return {
        "eer_percent": 100 * eer,
        "eer_threshold": threshold,
        "min_dcf_0.01": dcf_01,
        "min_dcf_0.01_threshold": threshold_01,
        "min_dcf_0.05": dcf_05,
        "min_dcf_0.05_threshold": threshold_05,
        "trials": int(labels.size),
        "targets": int(labels.sum()),
    }

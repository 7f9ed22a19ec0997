"""`speaker-verification` pipeline: one audio -> its embedding; a pair -> cosine score and
decision at `config.threshold`. Outputs are plain Python (lists, floats, bools).

Audio may be a path, raw file bytes, a 1-D float array (at 16 kHz, or at the rate given by
`sampling_rate=`), or a dict `{"array" | "raw": ..., "sampling_rate": ...}` (resampled when
needed). Unknown keyword arguments raise `TypeError`; an empty input raises `ValueError`; a
silent one logs a warning. A pair is a tuple
`(audio_a, audio_b)` or a dict `{"enroll": ..., "test": ...}`; a list is a batch.

Example:

```python
>>> from transformers import pipeline
>>> verify = pipeline("speaker-verification", model="path/or/hub-id", trust_remote_code=True)
>>> verify(("a.wav", "b.wav"))
{'score': 0.71, 'same_speaker': True}
>>> verify("a.wav")["embedding"][:3]
```
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from transformers import Pipeline
from transformers.utils import logging

logger = logging.get_logger(__name__)
SILENCE_PEAK = 1e-4  # below this peak amplitude an input is treated as silent

try:  # optional decoders; FFmpeg (through transformers) is the fallback
    import soundfile
except ImportError:  # pragma: no cover
    soundfile = None


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (zero-padding / truncating the spectrum); numpy only."""
    if source_rate == target_rate:
        return wave
    length = int(round(wave.shape[-1] * target_rate / source_rate))
    spectrum = np.fft.rfft(wave)
    return (np.fft.irfft(spectrum, n=length) * (length / wave.shape[-1])).astype(np.float32)


def load_audio(audio: Any, sampling_rate: int, input_rate: int | None = None) -> np.ndarray:
    """Any supported audio input -> mono float32 at `sampling_rate`; `input_rate` is the rate
    of a bare array (default: `sampling_rate`)."""
    rate = input_rate or sampling_rate
    if isinstance(audio, dict):
        key = "array" if "array" in audio else "raw"
        if key not in audio or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' (or 'raw') and 'sampling_rate'")
        wave, rate = np.asarray(audio[key], dtype=np.float32), int(audio["sampling_rate"])
    elif isinstance(audio, (str, bytes, bytearray)):
        if isinstance(audio, str):
            with open(audio, "rb") as f:
                payload = f.read()
        else:
            payload = bytes(audio)
        if soundfile is not None:
            try:
                wave, rate = soundfile.read(io.BytesIO(payload), dtype="float32", always_2d=True)
                wave = wave.mean(axis=1)
            except Exception:
                wave = None
        else:  # pragma: no cover
            wave = None
        if wave is None:
            from transformers.pipelines.audio_utils import ffmpeg_read

            wave, rate = ffmpeg_read(payload, sampling_rate), sampling_rate
    elif isinstance(audio, (np.ndarray, torch.Tensor, list)):
        wave = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        wave = wave.astype(np.float32)
    else:
        raise ValueError(f"unsupported audio input of type {type(audio).__name__}")
    if wave.ndim == 2:  # (channels, samples) or (samples, channels): average the shorter axis
        wave = wave.mean(axis=0 if wave.shape[0] <= wave.shape[1] else 1)
    if wave.ndim != 1:
        raise ValueError(f"audio must be mono or (channels, samples), got shape {wave.shape}")
    if wave.size == 0:
        raise ValueError("empty audio: no samples to embed")
    if not np.isfinite(wave).all():
        raise ValueError("audio contains NaN or infinite samples")
    if rate <= 0:
        raise ValueError(f"sampling_rate must be positive, got {rate}")
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        logger.warning(f"silent audio (peak below {SILENCE_PEAK}): its embedding says nothing about a speaker")
    return resample(wave, rate, sampling_rate)


class SpeakerVerificationPipeline(Pipeline):
    """Speaker embeddings and verification with an SSPS encoder (`SSPSModel`)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def _sanitize_parameters(
        self, threshold: float | None = None, sampling_rate: int | None = None, **kwargs: Any
    ) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"speaker-verification pipeline got unknown keyword arguments: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        if sampling_rate is not None:
            if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
                raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
            preprocess["sampling_rate"] = int(sampling_rate)
        postprocess: dict[str, Any] = {}
        if threshold is not None:
            numeric = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
            if not numeric or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be a cosine score in [-1, 1], got {threshold!r}")
            postprocess["threshold"] = float(threshold)
        return preprocess, {}, postprocess

    def preprocess(self, inputs: Any, sampling_rate: int | None = None) -> dict[str, Any]:
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, dict) and "enroll" in inputs and "test" in inputs:
            inputs = (inputs["enroll"], inputs["test"])
        pair = isinstance(inputs, tuple)
        if pair and len(inputs) != 2:
            raise ValueError(f"a verification pair has 2 audios, got {len(inputs)}")
        waves = [load_audio(a, rate, sampling_rate) for a in (inputs if pair else (inputs,))]
        batch = self.feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
        return {"batch": batch, "pair": pair}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        batch = {k: v.to(self.device) for k, v in model_inputs["batch"].items()}
        embeddings = self.model(**batch).embeddings
        return {"embeddings": torch.nn.functional.normalize(embeddings, dim=-1).cpu(), "pair": model_inputs["pair"]}

    def postprocess(self, model_outputs: dict[str, Any], threshold: float | None = None) -> dict[str, Any]:
        embeddings = model_outputs["embeddings"].float()
        if not model_outputs["pair"]:
            return {"embedding": embeddings[0].tolist()}
        score = float(embeddings[0] @ embeddings[1])
        limit = float(self.model.config.threshold if threshold is None else threshold)
        return {"score": score, "same_speaker": score >= limit}


__all__ = ["SpeakerVerificationPipeline", "load_audio", "resample"]

"""`speaker-verification` pipeline: one audio -> its embedding; a pair -> cosine score and
decision at `config.threshold`. Outputs are plain Python (lists, floats, bools).

Audio may be a path, raw file bytes, a 1-D float array (at 16 kHz, or at the rate given by
`sampling_rate=`), or a dict `{"array" | "raw": ..., "sampling_rate": ...}` (the conventions of
the transformers audio pipelines), resampled with soxr when needed. A pair is a tuple
`(audio_a, audio_b)` or a dict `{"enroll": ..., "test": ...}`; a list is a batch, and
`batch_size=` batches the forward passes.

Long recordings: `chunk_length_s` cuts each audio into windows of that length; consecutive
windows overlap by `stride_length_s` (default half a window), the last window ends at the end
of the audio, and the audio's embedding is the length-weighted mean of its window embeddings,
re-normalised (pyannote's sliding-window inference does the same). `crop=(start_s, end_s)`
keeps only that part of every audio; `vad=True` drops the silent frames first (an energy
detector: 30 ms frames more than 40 dB below the loudest).

Unknown keyword arguments raise `TypeError`; an empty input raises `ValueError`; a silent one
logs a warning; a model whose config carries no measured threshold warns at its first decision.

Example:

```python
>>> from transformers import pipeline
>>> import modeling_ssps  # registers the task: no trust_remote_code needed with the package installed
>>> verify = pipeline("speaker-verification", model="path/or/hub-id")
>>> verify(("a.wav", "b.wav"))
{'score': 0.71, 'same_speaker': True}
>>> verify("meeting.wav", chunk_length_s=3.0, vad=True)["embedding"][:3]
>>> verify([("a.wav", "b.wav"), ("a.wav", "c.flac")], batch_size=8)
```
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

logger = logging.get_logger(__name__)
SILENCE_PEAK = 1e-4  # below this peak amplitude an input is treated as silent

try:  # optional decoders; FFmpeg (through transformers) is the fallback
    import soundfile
except ImportError:  # pragma: no cover
    soundfile = None
try:  # the resampler (a dependency of the package; a remote-code user without it gets a clear error)
    import soxr
except ImportError:  # pragma: no cover
    soxr = None


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resampling with soxr (high quality), the library librosa and 🤗 audio tooling use."""
    if source_rate == target_rate:
        return wave
    if soxr is None:  # pragma: no cover
        raise ImportError(f"audio at {source_rate} Hz needs resampling to {target_rate} Hz: pip install soxr")
    return np.asarray(soxr.resample(wave.astype(np.float32), source_rate, target_rate, quality="HQ"), dtype=np.float32)


def energy_vad(wave: np.ndarray, sampling_rate: int, floor_db: float = -40.0, frame_s: float = 0.03) -> np.ndarray:
    """The samples of the frames within `floor_db` of the loudest frame (and one frame either
    side of each, so onsets survive); the whole audio when nothing would be left."""
    frame = max(1, int(frame_s * sampling_rate))
    count = wave.shape[0] // frame
    if count < 2:
        return wave
    energy = 10 * np.log10(np.mean(wave[: count * frame].reshape(count, frame) ** 2, axis=1) + 1e-12)
    keep = energy >= energy.max() + floor_db
    keep = keep | np.roll(keep, 1) | np.roll(keep, -1)
    kept = wave[: count * frame].reshape(count, frame)[keep].reshape(-1)
    return kept if kept.size else wave


def windows(length: int, chunk: int | None, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges covering `length`: one window without `chunk`, else windows of
    `chunk` samples `chunk - overlap` apart, the last one ending at `length`."""
    if chunk is None or length <= chunk:
        return [(0, length)]
    hop = chunk - overlap
    starts = list(range(0, length - chunk, hop)) + [length - chunk]
    return [(start, start + chunk) for start in starts]


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


class SpeakerVerificationPipeline(ChunkPipeline):
    """Speaker embeddings and verification with an SSPS encoder (`SSPSModel`). A chunk pipeline:
    every audio of an input (one, or two for a pair) and every window of it is one model item,
    so `batch_size` batches windows across inputs, padded with attention masks (which equals
    one-by-one inference, see `modeling_ssps`)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False
    _warned_uncalibrated = False

    def _sanitize_parameters(
        self,
        threshold: float | None = None,
        sampling_rate: int | None = None,
        chunk_length_s: float | None = None,
        stride_length_s: float | None = None,
        crop: tuple[float, float] | None = None,
        vad: bool | None = None,
        **kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"speaker-verification pipeline got unknown keyword arguments: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        if sampling_rate is not None:
            if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
                raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
            preprocess["sampling_rate"] = int(sampling_rate)
        if chunk_length_s is not None:
            if not _positive(chunk_length_s):
                raise ValueError(f"chunk_length_s must be a positive number of seconds, got {chunk_length_s!r}")
            preprocess["chunk_length_s"] = float(chunk_length_s)
        if stride_length_s is not None:
            if chunk_length_s is None:
                raise ValueError("stride_length_s needs chunk_length_s")
            if not _positive(stride_length_s, allow_zero=True) or stride_length_s >= chunk_length_s:
                raise ValueError(f"stride_length_s must be in [0, chunk_length_s), got {stride_length_s!r}")
            preprocess["stride_length_s"] = float(stride_length_s)
        if crop is not None:
            pair_of_times = isinstance(crop, (tuple, list)) and len(crop) == 2 and all(_positive(c, allow_zero=True) for c in crop)
            if not pair_of_times or crop[0] >= crop[1]:
                raise ValueError(f"crop must be (start_s, end_s) with 0 <= start_s < end_s, got {crop!r}")
            preprocess["crop"] = (float(crop[0]), float(crop[1]))
        if vad is not None:
            preprocess["vad"] = bool(vad)
        postprocess: dict[str, Any] = {}
        if threshold is not None:
            numeric = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
            if not numeric or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be a cosine score in [-1, 1], got {threshold!r}")
            postprocess["threshold"] = float(threshold)
        return preprocess, {}, postprocess

    def preprocess(
        self,
        inputs: Any,
        sampling_rate: int | None = None,
        chunk_length_s: float | None = None,
        stride_length_s: float | None = None,
        crop: tuple[float, float] | None = None,
        vad: bool = False,
    ) -> Iterator[dict[str, Any]]:
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, dict) and "enroll" in inputs and "test" in inputs:
            inputs = (inputs["enroll"], inputs["test"])
        pair = isinstance(inputs, tuple)
        if pair and len(inputs) != 2:
            raise ValueError(f"a verification pair has 2 audios, got {len(inputs)}")
        audios = [load_audio(a, rate, sampling_rate) for a in (inputs if pair else (inputs,))]
        chunk = None if chunk_length_s is None else max(1, int(round(chunk_length_s * rate)))
        overlap = 0 if chunk is None else int(round((chunk_length_s / 2 if stride_length_s is None else stride_length_s) * rate))
        items = []
        for index, wave in enumerate(audios):
            if crop is not None:
                start, stop = int(crop[0] * rate), int(crop[1] * rate)
                if start >= wave.shape[0]:
                    raise ValueError(f"crop starts at {crop[0]} s, after the end of a {wave.shape[0] / rate:.2f} s audio")
                wave = wave[start:stop]
            if vad:
                wave = energy_vad(wave, rate)
            for start, stop in windows(wave.shape[0], chunk, overlap):
                features = self.feature_extractor([wave[start:stop]], sampling_rate=rate, return_tensors="pt")
                items.append({**features, "audio": torch.tensor([index]), "weight": torch.tensor([float(stop - start)]),
                              "pair": torch.tensor([pair])})  # fmt: skip
        for k, item in enumerate(items):
            yield {**item, "is_last": k == len(items) - 1}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        is_last = model_inputs.pop("is_last")
        meta = {key: model_inputs.pop(key) for key in ("audio", "weight", "pair")}
        batch = {k: v.to(self.device) for k, v in model_inputs.items()}
        embeddings = torch.nn.functional.normalize(self.model(**batch).embeddings.float(), dim=-1).cpu()
        return {"embeddings": embeddings, **meta, "is_last": is_last}

    def postprocess(self, model_outputs: list[dict[str, Any]], threshold: float | None = None) -> dict[str, Any]:
        embeddings = torch.cat([o["embeddings"].reshape(-1, o["embeddings"].shape[-1]) for o in model_outputs])
        audio = torch.cat([o["audio"].reshape(-1) for o in model_outputs])
        weight = torch.cat([o["weight"].reshape(-1) for o in model_outputs])
        pair = bool(model_outputs[0]["pair"].reshape(-1)[0])
        per_audio = []
        for index in range(2 if pair else 1):  # length-weighted mean of the windows, re-normalised
            mine = audio == index
            mean = (embeddings[mine] * weight[mine, None]).sum(0) / weight[mine].sum()
            per_audio.append(torch.nn.functional.normalize(mean, dim=-1))
        if not pair:
            return {"embedding": per_audio[0].tolist()}
        score = float(per_audio[0] @ per_audio[1])
        if threshold is None:
            threshold = float(self.model.config.threshold)
            if getattr(self.model.config, "threshold_source", None) is None and not self._warned_uncalibrated:
                logger.warning(
                    f"this model's threshold {threshold} was never measured on a trial list (config.threshold_source is "
                    "unset): same_speaker is an arbitrary cut; pass threshold= or use a model exported with --threshold_from"
                )
                self._warned_uncalibrated = True
        return {"score": score, "same_speaker": score >= threshold}


def _positive(value: Any, allow_zero: bool = False) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    return numeric and (value >= 0 if allow_zero else value > 0)


__all__ = ["SpeakerVerificationPipeline", "energy_vad", "load_audio", "resample", "windows"]

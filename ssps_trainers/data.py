"""`MultiViewCollator`: dataset rows -> the named tensors of one SSL step (docs/architecture.md §3.2).

Rows carry `audio`, `sample_index`, and optionally `utt_id`, `speaker_id`, `video_id` (the
columns `ssps_trainers.audio_datasets.standardize` gives any dataset). `audio` is an encoded file of
the `datasets.Audio` feature (`{"bytes", "path"}`, decoded here by the library's decoder at the
model's rate, mono), an already decoded one, a float array (synthetic data), or the toolkit's
older raw 16 kHz FLAC bytes (only the needed ranges decoded, soundfile `start=`/`stop=`).
Utterances shorter than a crop are wrap-padded, and every random draw is a
pure function of (seed, epoch, sample_index), so a resumed or re-sharded run sees the same
crops. Augmentation (`augment`) applies to the training views only, never to the clean SSPS
reference crop (docs/method.md §3, §13).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from .corpus import SAMPLING_RATE


class AudioDecodeError(ValueError):
    """A training row whose audio cannot be used; the message names the utterance."""


def _row_name(row: dict[str, Any]) -> str:
    return str(row.get("utt_id", f"sample_index={row.get('sample_index')}"))


def _encoded_name(row: dict[str, Any]) -> str:
    audio = row["audio"]
    path = audio.get("path") if isinstance(audio, dict) else getattr(getattr(audio, "metadata", None), "path", None)
    return str(row["utt_id"]) if "utt_id" in row else str(path or _row_name(row))


def _is_encoded(audio: Any) -> bool:
    """A `datasets.Audio` value: `{"bytes", "path"}` (decode=False) or a decoder (decode=True)."""
    return (isinstance(audio, dict) and ("bytes" in audio or "path" in audio)) or hasattr(audio, "get_all_samples")


def decode_audio(row: dict[str, Any], sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """The whole of a row's audio as mono float32 at `sampling_rate`. Encoded files are decoded
    (and resampled, downmixed) by the decoder of 🤗 datasets' `Audio` feature; an error names
    the utterance or file. Peaks above full scale are scaled down, never clipped."""
    audio = row["audio"]
    if isinstance(audio, dict) and "array" in audio:  # a decoded {"array", "sampling_rate"} value
        rate = int(audio.get("sampling_rate", sampling_rate))
        if rate != sampling_rate:
            raise AudioDecodeError(f"{_row_name(row)}: decoded audio at {rate} Hz, expected {sampling_rate} Hz")
        wave = np.asarray(audio["array"], dtype=np.float32)
    elif _is_encoded(audio):
        try:
            if isinstance(audio, dict):
                from datasets import Audio

                audio = Audio(sampling_rate=sampling_rate, num_channels=1).decode_example(audio)
            samples = audio.get_all_samples()
        except Exception as error:  # torchcodec / the library raise several types for corrupt files
            raise AudioDecodeError(f"{_encoded_name(row)}: cannot decode audio ({type(error).__name__}: {error})") from error
        if samples.sample_rate != sampling_rate:
            raise AudioDecodeError(f"{_encoded_name(row)}: decoded at {samples.sample_rate} Hz, expected {sampling_rate} Hz")
        wave = samples.data.float().mean(dim=0).numpy()
    else:
        return read_range(row, 0, audio_length(row))
    if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
        raise AudioDecodeError(f"{_encoded_name(row)}: empty, multi-channel or non-finite audio")
    peak = float(np.abs(wave).max())
    return wave * np.float32(0.99 / peak) if peak > 1.0 else wave


def decoded(row: dict[str, Any], sampling_rate: int = SAMPLING_RATE) -> dict[str, Any]:
    """The row with encoded audio replaced by its samples (raw FLAC bytes stay: partial reads)."""
    if not (isinstance(row["audio"], dict) or _is_encoded(row["audio"])):
        return row
    return {**row, "audio": decode_audio(row, sampling_rate)}


def audio_length(row: dict[str, Any], sampling_rate: int = SAMPLING_RATE) -> int:
    """Number of samples of a row's audio (from the header for raw bytes; for an encoded file
    an estimate from its header duration, exact after `decoded`)."""
    audio = row["audio"]
    if _is_encoded(audio):
        try:
            if isinstance(audio, dict):
                from datasets import Audio

                audio = Audio(sampling_rate=sampling_rate, num_channels=1).decode_example(audio)
            seconds = audio.metadata.duration_seconds_from_header
        except Exception as error:
            raise AudioDecodeError(f"{_encoded_name(row)}: cannot read audio header ({type(error).__name__}: {error})") from error
        if seconds is None:
            return int(audio.get_all_samples().data.shape[-1])
        return int(round(seconds * sampling_rate))
    if isinstance(audio, dict):  # {"array", "sampling_rate"}
        return int(np.asarray(audio["array"]).shape[-1])
    if isinstance(audio, (bytes, bytearray)):
        try:
            info = soundfile.info(io.BytesIO(audio))
        except Exception as error:  # soundfile raises several types for corrupt data
            raise AudioDecodeError(f"{_row_name(row)}: cannot read audio header ({error})") from error
        if info.samplerate != sampling_rate:
            raise AudioDecodeError(
                f"{_row_name(row)}: sample rate {info.samplerate} Hz, expected {sampling_rate} Hz "
                "(re-run prepare_voxceleb.py, which resamples)"
            )
        return int(info.frames)
    return int(np.asarray(audio).shape[-1])


def read_range(row: dict[str, Any], start: int, stop: int) -> np.ndarray:
    """Mono float32 samples [start, stop) of a row's audio."""
    audio = row["audio"]
    if isinstance(audio, (bytes, bytearray)):
        try:
            data, _ = soundfile.read(io.BytesIO(audio), start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as error:
            raise AudioDecodeError(f"{_row_name(row)}: cannot decode audio ({error})") from error
        data = data.mean(axis=1)
    elif isinstance(audio, dict) or _is_encoded(audio):
        data = decode_audio(row)[start:stop]
    else:
        data = np.asarray(audio, dtype=np.float32)[start:stop]
    if data.size == 0 or not np.isfinite(data).all():
        raise AudioDecodeError(f"{_row_name(row)}: empty or non-finite samples in [{start}, {stop})")
    return data


def random_crop(row: dict[str, Any], length: int, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed crop of `num_samples`; shorter audio is wrap-padded (tiled)."""
    if length >= num_samples:
        start = int(rng.integers(0, length - num_samples + 1))
        return read_range(row, start, start + num_samples)
    whole = read_range(row, 0, length)
    return np.resize(whole, num_samples)  # wrap-pad: repeat from the start


class MultiViewCollator:
    """Collate rows into `input_values` (b, V, T), optional `local_input_values` (b, L, T_l)
    (DINO), optional `reference_values` (b, T_ref) (SSPS runs), `sample_index` (b,), and
    `speaker_id` / `video_id` (b,) when the rows have them.

    Example:

    ```python
    >>> collate = MultiViewCollator(num_views=2, crop_samples=32000, reference_samples=64000)
    >>> batch = collate(rows)   # input_values (b, 2, 32000), reference_values (b, 64000)
    ```
    """

    def __init__(
        self,
        num_views: int = 2,
        crop_samples: int = 32000,
        local_views: int = 0,
        local_crop_samples: int = 32000,
        reference_samples: int | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        seed: int = 1717,
        sampling_rate: int = SAMPLING_RATE,
    ) -> None:
        if num_views < 1 or crop_samples < 1:
            raise ValueError(f"need num_views >= 1 and crop_samples >= 1, got {num_views}, {crop_samples}")
        self.num_views = num_views
        self.crop_samples = crop_samples
        self.local_views = local_views
        self.local_crop_samples = local_crop_samples
        self.reference_samples = reference_samples
        self.augment = augment
        self.seed = seed
        self.sampling_rate = sampling_rate
        # None: streaming mode, crops are fresh per call (seeded by worker and call counter)
        self.epoch: int | None = 0
        self._calls = 0

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        views, locals_, references, indices = [], [], [], []
        self._calls += 1
        worker = torch.utils.data.get_worker_info()
        stream_key = [self._calls, worker.id if worker is not None else 0, torch.initial_seed() % (2**32)]
        for row in rows:
            row = decoded(row, self.sampling_rate)  # encoded files: decoded once, cropped below
            index = int(row["sample_index"])
            key = [self.seed, self.epoch, index] if self.epoch is not None else [self.seed, index, *stream_key]
            rng = np.random.default_rng(key)
            length = audio_length(row)
            crops = [random_crop(row, length, self.crop_samples, rng) for _ in range(self.num_views)]
            local = [random_crop(row, length, self.local_crop_samples, rng) for _ in range(self.local_views)]
            if self.augment is not None:
                crops = [self.augment(c, rng) for c in crops]
                local = [self.augment(c, rng) for c in local]
            views.append(np.stack(crops))
            if local:
                locals_.append(np.stack(local))
            if self.reference_samples is not None:  # clean: never augmented
                references.append(random_crop(row, length, self.reference_samples, rng))
            indices.append(index)
        batch = {
            "input_values": torch.from_numpy(np.stack(views)).float(),
            "sample_index": torch.tensor(indices, dtype=torch.long),
        }
        if locals_:
            batch["local_input_values"] = torch.from_numpy(np.stack(locals_)).float()
        if references:
            batch["reference_values"] = torch.from_numpy(np.stack(references)).float()
        for key in ("speaker_id", "video_id"):
            if all(key in row and isinstance(row[key], (int, np.integer)) for row in rows):
                batch[key] = torch.tensor([int(row[key]) for row in rows], dtype=torch.long)
        return batch


NOISE_SNR_DB = {"noise": (0.0, 15.0), "speech": (13.0, 20.0), "music": (5.0, 15.0)}  # docs/method.md §13
STRATEGIES = ("reverb+noise", "all", "none")
AUGMENTATION_SUFFIXES = (".wav", ".flac")  # noise and RIR files, read with soundfile (not the corpus suffixes of corpus.py)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUGMENTATION_SUFFIXES)


class WaveformAugment:
    """Reverberation with room impulse responses, then additive MUSAN-style noise (docs/method.md §13).

    - `rir_dir`: any tree of RIR files (OpenSLR-28 `simulated_rirs` layout works); a random RIR
      is normalised to unit L2 norm, fully convolved (FFT) and truncated to the input length.
    - `musan_dir` with sub-folders `noise/`, `speech/`, `music/`: a category uniformly among
      those present, one file (or, with `musan_chunk_seconds`, one chunk), a random crop
      (wrap-padded if short), added at an SNR uniform in 0-15 / 13-20 / 5-15 dB, with power
      10 log10(mean(x^2) + 1e-4). `musan_chunk_seconds=8` draws as the reference recipe does
      after cutting MUSAN into 8 s files (theolepage/sslsv, tools/prepare_data/prepare_augmentation.py):
      uniformly over the non-overlapping 8 s chunks that fit strictly inside a file (the tail
      and files of 8 s or less give none), without rewriting MUSAN on disk. 0 (default):
      uniformly over whole files.
    - `strategy`: "reverb+noise" (every view, probability 1), "all" (DINO: one of none, reverb,
      noise, reverb+noise uniformly), or "none".

    Missing folders are reported once (a warning) and that augmentation is skipped; training
    never crashes because of them. Files are decoded on first use and cached per worker.
    """

    def __init__(
        self,
        musan_dir: str | Path | None = None,
        rir_dir: str | Path | None = None,
        strategy: str = "reverb+noise",
        musan_chunk_seconds: float = 0.0,
        sampling_rate: int = SAMPLING_RATE,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"WaveformAugment strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.sampling_rate = sampling_rate
        self.noise_files: dict[str, list[Path]] = {}
        if musan_dir is not None and Path(musan_dir).is_dir():
            for category in NOISE_SNR_DB:
                files = _audio_files(Path(musan_dir) / category)
                if files:
                    self.noise_files[category] = files
        self.noise_chunks: dict[str, list[tuple[Path, int]]] = {}
        if musan_chunk_seconds > 0:  # (file, first sample) of every chunk, from the headers only
            size = int(musan_chunk_seconds * sampling_rate)
            for category, files in self.noise_files.items():
                chunks = [(f, start) for f in files for start in range(0, soundfile.info(str(f)).frames - size, size)]
                if chunks:
                    self.noise_chunks[category] = chunks
            self.noise_files = {c: f for c, f in self.noise_files.items() if c in self.noise_chunks}
        self.chunk_samples = int(musan_chunk_seconds * sampling_rate)
        self.rir_files = _audio_files(Path(rir_dir)) if rir_dir is not None and Path(rir_dir).is_dir() else []
        missing = [name for name, ok in (("MUSAN noise", self.noise_files), ("RIR", self.rir_files)) if not ok]
        if missing and strategy != "none":
            warnings.warn(
                f"WaveformAugment: no {' and no '.join(missing)} files found (musan_dir={musan_dir!r}, "
                f"rir_dir={rir_dir!r}); training continues without that augmentation",
                stacklevel=2,
            )
        self._cache: dict[Path, np.ndarray] = {}

    def _load(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            if rate != self.sampling_rate:
                raise AudioDecodeError(f"{path}: sample rate {rate} Hz, expected {self.sampling_rate} Hz")
            if data.size == 0 or not np.isfinite(data).all():
                raise AudioDecodeError(f"{path}: empty or non-finite audio")
            self._cache[path] = data.mean(axis=1)
        return self._cache[path]

    def reverberate(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.rir_files:
            return wave
        rir = self._load(self.rir_files[int(rng.integers(len(self.rir_files)))])
        rir = rir / max(float(np.linalg.norm(rir)), 1e-12)
        wet = torchaudio_functional().fftconvolve(torch.from_numpy(wave), torch.from_numpy(rir))
        return wet[: wave.shape[0]].numpy().astype(np.float32)

    def add_noise(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files:
            return wave
        categories = sorted(self.noise_files)
        category = categories[int(rng.integers(len(categories)))]
        noise = self.draw_noise(category, rng)
        if noise.shape[0] >= wave.shape[0]:
            start = int(rng.integers(0, noise.shape[0] - wave.shape[0] + 1))
            noise = noise[start : start + wave.shape[0]]
        else:
            noise = np.resize(noise, wave.shape[0])
        low, high = NOISE_SNR_DB[category]
        snr = rng.uniform(low, high)
        speech_db = 10 * np.log10(np.mean(wave**2) + 1e-4)
        noise_db = 10 * np.log10(np.mean(noise**2) + 1e-4)
        scale = np.sqrt(10 ** ((speech_db - noise_db - snr) / 10))
        return (wave + scale * noise).astype(np.float32)

    def draw_noise(self, category: str, rng: np.random.Generator) -> np.ndarray:
        """One noise recording of `category`: a whole file, or one chunk of one."""
        if category in self.noise_chunks:
            chunks = self.noise_chunks[category]
            path, start = chunks[int(rng.integers(len(chunks)))]
            return self._load(path)[start : start + self.chunk_samples]
        files = self.noise_files[category]
        return self._load(files[int(rng.integers(len(files)))])

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.strategy == "none":
            return wave
        if self.strategy == "all":
            choice = int(rng.integers(4))  # none, reverb, noise, reverb+noise
            reverb, noise = choice in (1, 3), choice in (2, 3)
        else:
            reverb, noise = True, True
        if reverb:
            wave = self.reverberate(wave, rng)
        if noise:
            wave = self.add_noise(wave, rng)
        return wave


def torchaudio_functional() -> Any:
    """torchaudio.functional, imported on first use (train-time only, docs/architecture.md §1.5)."""
    import torchaudio.functional

    return torchaudio.functional

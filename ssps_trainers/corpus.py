"""Reading VoxCeleb-layout trees into 🤗 datasets rows (docs/architecture.md §8).

`decode_file` turns one file (WAV/FLAC through soundfile, M4A/anything else through FFmpeg)
into 16 kHz mono FLAC bytes, resampling and downmixing with a recorded warning, and raises
`UnreadableAudio` with the file and the reason for corrupt, empty, non-finite or too-short
audio. `prepare_voxceleb.py` maps it over files in parallel and resumable shards;
`load_trials` reads VoxCeleb1-format trial lists (`label enroll test`).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

# The rate every prepared corpus, demo corpus and augmentation set is stored at. It equals
# modeling_ssps.configuration_ssps.SAMPLING_RATE (the default of every config; a test checks):
# code that has a model reads `config.sampling_rate` instead.
SAMPLING_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".m4a", ".mp3", ".ogg", ".opus")


class UnreadableAudio(ValueError):
    """A file that cannot become a training row; the message names the file and the reason."""


@dataclass(frozen=True)
class DecodedAudio:
    flac: bytes
    num_samples: int
    warnings: tuple[str, ...]


def list_audio(root: str | Path) -> list[Path]:
    """Audio files under `root/<speaker>/<video>/`, sorted (the order sample_index follows)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in AUDIO_SUFFIXES)


def ignored_files(root: str | Path) -> list[str]:
    """Files under `root` that `list_audio` does not take, each with the reason: at another
    depth than `<speaker>/<video>/<utt>`, or with a suffix that is not audio we decode."""
    root = Path(root)
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if len(relative.parts) != 3:
            out.append(f"{relative.as_posix()}: not at <speaker>/<video>/<utterance> depth")
        elif path.suffix.lower() not in AUDIO_SUFFIXES:
            out.append(f"{relative.as_posix()}: suffix {path.suffix or '(none)'} is not one of {', '.join(AUDIO_SUFFIXES)}")
    return out


def _ffmpeg_decode(path: Path) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise UnreadableAudio(f"{path}: needs FFmpeg to decode {path.suffix} (apt-get install ffmpeg)")
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise UnreadableAudio(f"{path}: FFmpeg failed: {result.stderr.decode(errors='replace').strip()[:200]}")
    data, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    return data, rate


SILENCE_PEAK = 1e-6  # below this a file is silence for any encoder: refused
QUIET_PEAK = 1e-2  # below this 16-bit storage would keep only a few levels: scaled up
TARGET_PEAK = 0.5


def normalise_level(wave: np.ndarray, path: str | Path, warnings: list[str]) -> np.ndarray:
    """A waveform that 16-bit FLAC stores without damage. Peaks above 1 are scaled down (never
    clipped) and very quiet audio is scaled up (it would quantise to a few levels or to zeros);
    both are recorded in `warnings`. The log-mel front-end normalises each utterance, so a
    gain changes nothing an encoder sees. Silence (peak < 1e-6) is refused."""
    peak = float(np.abs(wave).max())
    if peak < SILENCE_PEAK:
        raise UnreadableAudio(f"{path}: silence (peak {peak:.1e})")
    if peak > 1.0:
        warnings.append(f"{path}: peak {peak:.3g} above full scale, scaled down by {peak / 0.99:.3g} (not clipped)")
        return (wave * (0.99 / peak)).astype(np.float32)
    if peak < QUIET_PEAK:
        warnings.append(f"{path}: very quiet (peak {peak:.1e}), scaled up by {TARGET_PEAK / peak:.3g} for 16-bit storage")
        return (wave * (TARGET_PEAK / peak)).astype(np.float32)
    return wave


def decode_file(path: str | Path, min_seconds: float = 0.5) -> DecodedAudio:
    """One file -> 16 kHz mono FLAC bytes (+ what was changed on the way)."""
    path = Path(path)
    warnings: list[str] = []
    try:
        if path.suffix.lower() in (".wav", ".flac", ".ogg"):
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        else:
            data, rate = _ffmpeg_decode(path)
    except UnreadableAudio:
        raise
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise UnreadableAudio(f"{path}: cannot decode ({error})") from error
    if data.size == 0:
        raise UnreadableAudio(f"{path}: no samples")
    if not np.isfinite(data).all():
        raise UnreadableAudio(f"{path}: NaN or infinite samples")
    if data.shape[1] > 1:
        warnings.append(f"{path}: {data.shape[1]} channels averaged to mono")
    wave = data.mean(axis=1)
    if rate != SAMPLING_RATE:
        import torch
        import torchaudio.functional

        warnings.append(f"{path}: resampled from {rate} Hz to {SAMPLING_RATE} Hz")
        wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, SAMPLING_RATE).numpy()
    if wave.shape[0] < min_seconds * SAMPLING_RATE:
        raise UnreadableAudio(f"{path}: {wave.shape[0] / SAMPLING_RATE:.2f} s, shorter than {min_seconds} s")
    wave = normalise_level(wave, path, warnings)
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    return DecodedAudio(buffer.getvalue(), int(wave.shape[0]), tuple(warnings))


def load_trials(path: str | Path) -> list[tuple[int, str, str]]:
    """VoxCeleb1-format trials: one `label enroll test` per line, label 1 = target."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trial list {path} does not exist")
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise ValueError(f"{path}:{number}: expected 'label enroll test' with label 0/1, got {line!r}")
        trials.append((int(parts[0]), parts[1], parts[2]))
    if not trials:
        raise ValueError(f"trial list {path} is empty")
    return trials

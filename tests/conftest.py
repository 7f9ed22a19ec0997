"""Shared fixtures: tiny configs, synthetic audio, an offline Hugging Face home in a temp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Offline before anything from the HF stack is imported by a test module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(autouse=True)
def hf_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets a private HF_HOME (cache, remote-code modules) and stays offline."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_MODULES_CACHE", str(home / "modules"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1717)


def synthetic_voice(rng: np.random.Generator, num_samples: int, f0: float = 120.0) -> np.ndarray:
    """A harmonic tone with vibrato plus a little noise: speech-like enough for shape tests."""
    t = np.arange(num_samples) / 16000.0
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / 16000.0
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    wave = wave + 0.05 * rng.standard_normal(num_samples)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


@pytest.fixture
def waveforms(rng: np.random.Generator) -> list[np.ndarray]:
    """Three waveforms of different lengths (2 s, 1.3 s, 0.6 s)."""
    return [synthetic_voice(rng, n, f0) for n, f0 in ((32000, 110.0), (20800, 180.0), (9600, 240.0))]


@pytest.fixture
def tiny_ecapa_kwargs() -> dict[str, object]:
    return {
        "encoder_type": "ecapa_tdnn",
        "ecapa_channels": (64, 64, 64, 64, 192),
        "ecapa_se_channels": 16,
        "ecapa_attention_channels": 16,
        "embedding_dim": 32,
    }


@pytest.fixture
def tiny_resnet_kwargs() -> dict[str, object]:
    return {
        "encoder_type": "fast_resnet34",
        "resnet_channels": (4, 8, 8, 16),
        "resnet_layers": (1, 1, 1, 1),
        "embedding_dim": 32,
    }


def wav_bytes(wave: np.ndarray, sampling_rate: int = 16000, fmt: str = "WAV") -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, sampling_rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def tiny_wav_rows(rng: np.random.Generator) -> dict[str, list[object]]:
    """8 utterances (0.8-1.5 s) of 4 synthetic speakers in 2 'videos' each, as WAV bytes."""
    rows: dict[str, list[object]] = {"audio": [], "sample_index": [], "speaker_id": [], "video_id": []}
    for i in range(8):
        speaker = i % 4
        n = int(rng.uniform(0.8, 1.5) * 16000)
        rows["audio"].append(wav_bytes(synthetic_voice(rng, n, 100.0 + 35.0 * speaker)))
        rows["sample_index"].append(i)
        rows["speaker_id"].append(speaker)
        rows["video_id"].append(2 * speaker + (i // 4))
    return rows

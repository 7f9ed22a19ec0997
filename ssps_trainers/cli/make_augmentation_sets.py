"""Build small MUSAN- and RIR-layout folders offline, for the demo and the tests.

    python scripts/make_augmentation_sets.py --output_dir data/augment [--files 20]

    <output_dir>/musan/noise/*.wav    coloured noise, hum, clicks (8 s chunks, like pre-cut MUSAN)
    <output_dir>/musan/speech/*.wav   babble of synthetic talkers
    <output_dir>/musan/music/*.wav    harmonic note sequences with rhythm
    <output_dir>/rirs/*.wav           simulated rooms (image method, pyroomacoustics; else a
                                      decaying noise tail), RT60 0.2-1.0 s

These are stand-ins with the real folders' layout; for paper results use MUSAN (OpenSLR 17)
and the OpenSLR 28 simulated RIRs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

from ssps_trainers.synthesis import SAMPLING_RATE, noise_signal, random_voice, room_rir, speak

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--output_dir", type=Path, required=True)
parser.add_argument("--files", type=int, default=20, help="Files per category and RIRs.")
parser.add_argument("--seconds", type=float, default=8.0, help="Chunk length (MUSAN is pre-cut to 8 s).")
parser.add_argument("--seed", type=int, default=4242)
args = parser.parse_args()
rng = np.random.default_rng(args.seed)
n = int(args.seconds * SAMPLING_RATE)


def save(path: Path, wave: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.5 * wave / max(float(np.abs(wave).max()), 1e-9)
    soundfile.write(path, wave.astype(np.float32), SAMPLING_RATE, subtype="PCM_16")


def music(length: int) -> np.ndarray:
    t = np.arange(length) / SAMPLING_RATE
    out = np.zeros(length)
    beat = rng.uniform(0.15, 0.5)
    for start in np.arange(0, args.seconds, beat):
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        segment = (t >= start) & (t < start + beat * rng.uniform(0.8, 2.0))
        decay = np.exp(-(t - start) * rng.uniform(2, 8)) * segment
        out += decay * sum(np.sin(2 * np.pi * f0 * h * t) / h**1.5 for h in range(1, 6))
    return out


for k in range(args.files):
    kind = ("white", "pink", "brown", "hum")[k % 4]
    noise = noise_signal(kind, n, rng)
    if k % 5 == 4:  # clicks / transients on top
        noise = noise + (rng.random(n) < 0.0005) * rng.standard_normal(n) * 20
    save(args.output_dir / "musan" / "noise" / f"noise-{k:04d}.wav", noise)
    save(args.output_dir / "musan" / "speech" / f"speech-{k:04d}.wav", speak(random_voice(rng), args.seconds, rng))
    save(args.output_dir / "musan" / "music" / f"music-{k:04d}.wav", music(n))
    save(args.output_dir / "rirs" / f"room-{k:04d}.wav", room_rir(rng))
print(f"wrote {4 * args.files} files under {args.output_dir}")

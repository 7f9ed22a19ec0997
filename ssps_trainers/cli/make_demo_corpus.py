"""Build the embedded demo corpus in the exact VoxCeleb layout, with trial lists.

    python scripts/make_demo_corpus.py --output_dir data/demo_corpus --preset demo

    <output_dir>/train/wav/<speaker>/<video>/<nnnnn>.wav      training speakers
    <output_dir>/test/wav/<speaker>/<video>/<nnnnn>.wav       disjoint test speakers
    <output_dir>/test/trials_cross_session.txt                label enroll test (VoxCeleb1 format)
    <output_dir>/test/trials_same_session.txt                 diagnostic: targets share a session
    <output_dir>/README.md, corpus.json                       sizes, timing, MFCC baseline EERs

Speakers are synthetic source-filter voices (ssps_trainers/synthesis.py); each speaker has several
sessions ("videos") and all utterances of a session share one recording channel (room RIR,
band-limiting EQ, noise type and level, gain). Deterministic by --seed. The MFCC-mean baseline
is measured on both trial lists: it scores far better on same-session trials than on
cross-session ones, which is the channel bias SSPS is meant to remove.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import string
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from tqdm.auto import tqdm

from ssps_trainers import seeds
from ssps_trainers.metrics import cosine_scores, equal_error_rate
from ssps_trainers.synthesis import (
    SAMPLING_RATE,
    TTSVoice,
    random_channel,
    random_voice,
    record,
    speak,
    tts_available,
    tts_speak,
    tts_variants,
)

PRESETS = {
    # speakers, sessions per speaker, utterances per session, seconds (min, max)
    "tiny": {"train": (8, 2, 3), "test": (4, 2, 3), "seconds": (1.5, 3.0)},
    "demo": {"train": (60, 4, 6), "test": (40, 3, 4), "seconds": (3.0, 6.0)},
}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--output_dir", type=Path, required=True, help="Corpus root (created).")
parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="tiny: seconds, for tests; demo: about a minute.")
parser.add_argument("--seed", type=int, default=1717, help="Everything is a function of this seed.")
parser.add_argument("--num_workers", type=int, default=max(1, multiprocessing.cpu_count()), help="Processes (one speaker each).")
parser.add_argument("--backend", choices=["auto", "synth", "tts"], default="auto",
                    help="synth: numpy source-filter voices (always works); tts: espeak-ng voice variants, two speakers "
                         "per variant (formant scale 0.93 / 1.07, pitch set separately), train/test split by variant; "
                         "auto: tts when espeak-ng is installed")  # fmt: skip
parser.add_argument("--voice_spread", type=float, default=1.0,
                    help="synth backend: how much speakers differ in formant shape and damping (1: demo; 0.5: a harder corpus).")
args = parser.parse_args()
if not args.voice_spread > 0:
    raise SystemExit(f"--voice_spread must be > 0, got {args.voice_spread}")
backend = ("tts" if tts_available() else "synth") if args.backend == "auto" else args.backend
if backend == "tts" and not tts_available():
    raise SystemExit("--backend tts needs espeak-ng (apt-get install espeak-ng)")


def video_name(rng: np.random.Generator) -> str:
    letters = string.ascii_letters + string.digits + "_-"
    return "".join(letters[i] for i in rng.integers(len(letters), size=11))


def make_speaker(job: tuple[str, str, int, int, int, tuple[float, float], str | None, float]) -> list[str]:
    split, speaker, seed, sessions, utterances, seconds, variant, formant = job
    rng = np.random.default_rng(seed)
    if variant is None:
        voice = random_voice(rng, args.voice_spread)
        say = lambda length: speak(voice, length, rng)  # noqa: E731
    else:
        tts = TTSVoice(variant, int(rng.integers(25, 75)), int(rng.integers(135, 195)), formant)
        say = lambda length: tts_speak(tts, length, rng)  # noqa: E731
    written = []
    for _ in range(sessions):
        channel = random_channel(rng)
        video = video_name(rng)
        folder = args.output_dir / split / "wav" / speaker / video
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(utterances):
            clean = say(rng.uniform(*seconds))
            wave = record(clean, channel, rng)
            path = folder / f"{k + 1:05d}.wav"
            soundfile.write(path, wave, SAMPLING_RATE, subtype="PCM_16")
            written.append(f"{speaker}/{video}/{path.name}")
    return written


start = time.perf_counter()
preset = PRESETS[args.preset]
jobs = []
speaker_number = 10000
persons: list[str] = []
variant: str | None = None
if backend == "tts":  # one espeak-ng variant = one person = two speakers; never split a person
    persons = list(np.random.default_rng(args.seed).permutation(tts_variants()))
    needed = sum((preset[split][0] + 1) // 2 for split in ("train", "test"))
    if needed > len(persons):
        raise SystemExit(f"the {args.preset} preset needs {needed} espeak-ng variants, {len(persons)} are installed")
for split in ("test", "train"):
    count, sessions, utterances = preset[split]
    for k in range(count):
        speaker_number += 1
        if backend == "tts" and k % 2 == 0:
            variant = persons.pop(0)  # the odd k that follows is the same person, other formant scale
        formant = 0.93 if k % 2 == 0 else 1.07
        jobs.append((split, f"id{speaker_number}", seeds.corpus_speaker(args.seed, speaker_number), sessions, utterances, preset["seconds"], variant, formant))
with multiprocessing.Pool(args.num_workers) as pool:
    results = list(tqdm(pool.imap(make_speaker, jobs), total=len(jobs), desc="synthesising speakers"))
files = {"train": [], "test": []}
for job, written in zip(jobs, results):
    files[job[0]].extend(written)
generation_seconds = time.perf_counter() - start

# trial lists over the test speakers (VoxCeleb1 format: label enroll test)
test = sorted(files["test"])
speaker = [u.split("/")[0] for u in test]
session = ["/".join(u.split("/")[:2]) for u in test]
cross, same = [], []
for a in range(len(test)):
    for b in range(a + 1, len(test)):
        if speaker[a] != speaker[b]:
            cross.append((0, a, b))
            same.append((0, a, b))
        elif session[a] != session[b]:
            cross.append((1, a, b))
        else:
            same.append((1, a, b))
for name, trials in (("trials_cross_session.txt", cross), ("trials_same_session.txt", same)):
    lines = [f"{label} {test[a]} {test[b]}" for label, a, b in trials]
    (args.output_dir / "test" / name).write_text("\n".join(lines) + "\n")

# MFCC-mean baseline: the channel bias made visible
mfcc = torchaudio.transforms.MFCC(sample_rate=SAMPLING_RATE, n_mfcc=20, melkwargs={"n_fft": 512, "hop_length": 160, "n_mels": 40})
embeddings = []
for utterance in test:
    wave, _ = soundfile.read(args.output_dir / "test" / "wav" / utterance, dtype="float32")
    embeddings.append(mfcc(torch.from_numpy(wave)).mean(dim=-1).numpy())
embeddings = np.stack(embeddings)
embeddings = embeddings - embeddings.mean(axis=0)  # centre, as any cosine back-end would
report = {
    "preset": args.preset,
    "backend": backend,
    "seed": args.seed,
    "train_utterances": len(files["train"]),
    "test_utterances": len(test),
    "train_speakers": preset["train"][0],
    "test_speakers": preset["test"][0],
    "hours": round(sum(soundfile.info(args.output_dir / s / "wav" / u).duration for s in files for u in files[s]) / 3600, 3),
    "generation_seconds": round(generation_seconds, 1),
    "cross_session_trials": len(cross),
    "same_session_trials": len(same),
}
for name, trials in (("cross_session", cross), ("same_session", same)):
    labels = [t[0] for t in trials]
    scores = cosine_scores(embeddings, [t[1] for t in trials], [t[2] for t in trials])
    report[f"mfcc_eer_{name}_percent"] = round(100 * equal_error_rate(scores, labels)[0], 2)
(args.output_dir / "corpus.json").write_text(json.dumps(report, indent=2))
(args.output_dir / "README.md").write_text(
    f"""# SSPS demo corpus ({args.preset})

Synthetic speakers in the VoxCeleb layout (`<split>/wav/<speaker>/<video>/<utt>.wav`, 16 kHz mono),
generated by `ssps-demo-corpus --preset {args.preset} --seed {args.seed} --backend {backend}` in
{report['generation_seconds']} s. {report['train_speakers']} training and {report['test_speakers']}
test speakers (disjoint), {report['train_utterances']} + {report['test_utterances']} utterances,
{report['hours']} h. Every utterance of a session ("video") shares one recording channel (room
impulse response, band-limiting EQ, noise type and SNR, gain).

Trial lists (`test/`): `trials_cross_session.txt` ({len(cross)} trials; targets are the same speaker
in *different* sessions) and `trials_same_session.txt` ({len(same)} trials; targets share a session).

Channel bias, measured with a naive MFCC-mean + cosine baseline:

| trials | EER (%) |
|---|---|
| same-session targets | {report['mfcc_eer_same_session_percent']} |
| cross-session targets | {report['mfcc_eer_cross_session_percent']} |

Same-utterance positives in SSL share the channel in the same way; SSPS replaces them with
another utterance, likely from another session.
"""
)
print(json.dumps(report, indent=2))

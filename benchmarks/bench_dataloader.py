"""Data-loading throughput per worker: decoded + cropped (+ augmented) views per second.

    python benchmarks/bench_dataloader.py [--rows 64] [--repeats 3] [--augment_dir data/augment]

Rows are 6 s FLAC utterances (as prepare_voxceleb.py stores them); one process = one DataLoader
worker. Augmentation sets are generated into a temp folder unless --augment_dir is given.
Prints a markdown table (median of --repeats); not run in CI.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from ssps_trainers.data import MultiViewCollator, WaveformAugment
from ssps_trainers.synthesis import random_voice, speak

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--rows", type=int, default=64)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--augment_dir", type=Path, default=None)
args = parser.parse_args()
torch.set_num_threads(1)  # one worker = one core
rng = np.random.default_rng(0)
rows = []
for i in range(args.rows):
    buffer = io.BytesIO()
    soundfile.write(buffer, speak(random_voice(rng), 6.0, rng), 16000, format="FLAC")
    rows.append({"audio": buffer.getvalue(), "sample_index": i})
augment_dir = args.augment_dir
if augment_dir is None:
    augment_dir = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "make_augmentation_sets.py"),
                    "--output_dir", str(augment_dir), "--files", "8"], check=True, capture_output=True)  # fmt: skip
setups = {
    "SimCLR views 2 x 2 s, clean": MultiViewCollator(crop_samples=32000),
    "SimCLR views 2 x 2 s, reverb+noise": MultiViewCollator(crop_samples=32000, augment=WaveformAugment(augment_dir / "musan", augment_dir / "rirs")),
    "SimCLR + SSPS reference (2 x 2 s aug + 4 s clean)": MultiViewCollator(crop_samples=32000, reference_samples=64000,
                                                                           augment=WaveformAugment(augment_dir / "musan", augment_dir / "rirs")),  # fmt: skip
    "DINO 2 x 4 s + 4 x 2 s, strategy all": MultiViewCollator(crop_samples=64000, local_views=4, local_crop_samples=32000,
                                                               augment=WaveformAugment(augment_dir / "musan", augment_dir / "rirs", "all")),  # fmt: skip
}
print(f"torch={torch.__version__} threads=1 rows={args.rows} repeats={args.repeats} (median)\n")
print("| setup | views per row | rows/s | views/s |\n|---|---|---|---|")
for name, collator in setups.items():
    collator(rows[:4])
    times = []
    for repeat in range(args.repeats):
        collator.epoch = repeat + 1
        start = time.perf_counter()
        batch = collator(rows)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    views = batch["input_values"].shape[1] + (batch["local_input_values"].shape[1] if "local_input_values" in batch else 0)
    views += 1 if "reference_values" in batch else 0
    print(f"| {name} | {views} | {args.rows / t:.0f} | {args.rows * views / t:.0f} |")

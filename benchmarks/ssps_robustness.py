"""Does SSPS help on data nobody tuned it for? The study behind docs/ssps_robustness.md.

    python benchmarks/ssps_robustness.py --output_dir outputs/study [--corpora demo weak tts] [--seeds 1717 1 2]

For every corpus x seed, runs the main job (`scripts/demo.py`, seeded end to
end: corpus, model init, crops, augmentation, SSPS draws) and reads its summary: the base's
label-free diagnostic, and the cross-session EER of the equal-epoch baseline, the robust SSPS
setting (agreement gate) and, for --paper_seeds, the paper's SSPS. Finished runs are reused (the demo skips every
step whose output exists), so the study can be stopped and restarted. Prints one table row per
run, then the mean and spread (min-max) over seeds per corpus and setting.

Corpora: `demo` (the tuned demo corpus), `weak` (synthetic voices at half the speaker spread,
another corpus seed: a weak bootstrap), `tts` (espeak-ng voice variants; needs espeak-ng).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPORA = {
    "demo": ["--backend", "synth", "--corpus_seed", "1717", "--voice_spread", "1.0"],
    "weak": ["--backend", "synth", "--corpus_seed", "2026", "--voice_spread", "0.5"],
    "tts": ["--backend", "tts", "--corpus_seed", "1717"],
}
SETTINGS = {"baseline": "baseline", "ssps": "SSPS robust (gate)", "ssps_paper": "SSPS paper"}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--output_dir", type=Path, default=Path("outputs/study"))
parser.add_argument("--corpora", nargs="+", choices=sorted(CORPORA), default=["demo", "weak", "tts"])
parser.add_argument("--seeds", nargs="+", type=int, default=[1717, 1, 2])
parser.add_argument("--paper_seeds", nargs="+", type=int, default=[1717], help="Seeds that also run the paper's SSPS (+5 min each).")
parser.add_argument("--report_only", action="store_true", help="Only tabulate the runs that finished.")
args = parser.parse_args()

if not args.report_only:
    for seed in args.seeds:  # all corpora at one seed before the next seed
        for corpus in args.corpora:
            folder = args.output_dir / f"{corpus}-s{seed}"
            paper = seed in args.paper_seeds
            summary = folder / "summary.json"
            if summary.exists() and (not paper or "ssps_paper" in json.loads(summary.read_text())["results"]):
                continue
            started = time.perf_counter()
            subprocess.run([sys.executable, "scripts/demo.py", "--output_dir", str(folder), "--seed", str(seed),
                            *(["--compare_paper"] if paper else []), *CORPORA[corpus]], check=True, cwd=REPO)  # fmt: skip
            print(f"{folder}: {(time.perf_counter() - started) / 60:.1f} min", flush=True)

rows = []
for corpus in args.corpora:
    for seed in args.seeds:
        summary = args.output_dir / f"{corpus}-s{seed}" / "summary.json"
        if summary.exists():
            rows.append((corpus, seed, json.loads(summary.read_text())))
print("\n| corpus | seed | seed agreement | verdict | pseudo-pos. same speaker (gate / paper) | baseline EER | robust EER | paper EER | minutes |")
print("|---|---|---|---|---|---|---|---|---|")
for corpus, seed, s in rows:
    r, d = s["results"], s["diagnosis"]
    eer = {k: r[k]["cross"]["eer_percent"] if k in r else float("nan") for k in SETTINGS}
    rate = lambda k: f"{r[k]['ssps/same_speaker_rate']:.3f}" if k in r and r[k].get("ssps/same_speaker_rate") is not None else "-"  # noqa: E731
    print(f"| {corpus} | {seed} | {d['seed_agreement']:.3f} | {d['verdict']} | {rate('ssps')} / {rate('ssps_paper')} | "
          f"{eer['baseline']:.2f} | {eer['ssps']:.2f} | {eer['ssps_paper']:.2f} | {s['minutes']:.1f} |")  # fmt: skip
print("\n| corpus | seeds | baseline EER mean (min-max) | robust EER mean (min-max) | paper EER mean (min-max) | robust vs baseline (relative) |")
print("|---|---|---|---|---|---|")
for corpus in args.corpora:
    mine = [s for c, _, s in rows if c == corpus]
    if not mine:
        continue
    cells, means = [], {}
    for key in SETTINGS:
        values = np.array([s["results"][key]["cross"]["eer_percent"] for s in mine if key in s["results"]])
        means[key] = values.mean() if values.size else float("nan")
        cells.append(f"{values.mean():.2f} ({values.min():.2f}-{values.max():.2f})" if values.size else "-")
    change = (means["ssps"] - means["baseline"]) / means["baseline"] * 100
    print(f"| {corpus} | {len(mine)} | " + " | ".join(cells) + f" | {change:+.1f} % |")

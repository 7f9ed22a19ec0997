"""Does SSPS help on data nobody tuned it for? The study behind docs/ssps_robustness.md.

    python benchmarks/ssps_robustness.py --output_dir outputs/study [--corpora demo weak tts] [--seeds 1717 1 2]

For every corpus x seed, runs the main job (`scripts/demo.py`, seeded end to
end: corpus, model init, crops, augmentation, SSPS draws) and reads its summary: the base's
label-free diagnostic, and the cross-session EER of the equal-epoch baseline, the robust SSPS
setting (agreement gate) and, for --paper_seeds, the paper's SSPS. Finished runs are reused (the demo skips every
step whose output exists), so the study can be stopped and restarted. Prints one table row per
run, then the mean and spread (min-max) over seeds per corpus and setting.

It then validates the label-free diagnostic: `scripts/diagnose_ssps.py` on every kept base
checkpoint of every run (different base-training lengths), and the correlation of each
label-free statistic with the true pseudo-positive same-speaker rate over all of them.

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

from ssps_trainers.ssps_diagnostics import paper_ssps_recommended

REPO = Path(__file__).resolve().parents[1]
CORPORA = {
    "demo": ["--backend", "synth", "--corpus_seed", "1717", "--voice_spread", "1.0"],
    "weak": ["--backend", "synth", "--corpus_seed", "2026", "--voice_spread", "0.5"],
    "tts": ["--backend", "tts", "--corpus_seed", "1717"],
}
DEMO_SSPS = json.loads((REPO / "configs" / "demo" / "simclr_ssps.json").read_text())  # the K and M the demo uses
SETTINGS = {"baseline": "no SSPS (baseline)", "ssps": "SSPS + agreement gate", "ssps_paper": "SSPS, paper"}

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
    for seed in args.seeds:
        for corpus in args.corpora:
            folder = args.output_dir / f"{corpus}-s{seed}"
            if (folder / "summary.json").exists() and not (folder / "validation.json").exists():
                base = sorted((folder / "base").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
                subprocess.run([sys.executable, "scripts/diagnose_ssps.py", "--checkpoint", *map(str, base), "--dataset",
                                str(folder / "prepared" / "train"), "--ssps_num_clusters", str(DEMO_SSPS["ssps_num_clusters"]),
                                "--ssps_neighbour_clusters", str(DEMO_SSPS["ssps_neighbour_clusters"]), "--seed", str(seed),
                                "--output", str(folder / "validation.json")], check=True, cwd=REPO)  # fmt: skip

rows = []
for corpus in args.corpora:
    for seed in args.seeds:
        summary = args.output_dir / f"{corpus}-s{seed}" / "summary.json"
        if summary.exists():
            rows.append((corpus, seed, json.loads(summary.read_text())))
def recommended(summary: dict) -> str:
    """The setting the label-free verdict picks (the rule of scripts/demo.py): the paper's SSPS when
    it is likely to help, else no SSPS (the baseline continuation)."""
    return "ssps_paper" if paper_ssps_recommended(summary["diagnosis"]) else "baseline"


def eer(summary: dict, key: str) -> float:
    return summary["results"][key]["cross"]["eer_percent"] if key in summary["results"] else float("nan")


print("\n| corpus | seed | pool agreement (label-free) | pool same speaker (labels) | pseudo-pos. same speaker: gate / paper | coverage: gate / paper "
      "| baseline EER | gate EER | paper EER | recommended | minutes |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for corpus, seed, s in rows:
    r, d = s["results"], s["diagnosis"]
    value = lambda k, m: f"{r[k][m]:.3f}" if k in r and r[k].get(m) is not None else "-"  # noqa: E731
    print(f"| {corpus} | {seed} | {d['pool_agreement']:.3f} | {d.get('pool_same_speaker', float('nan')):.3f} | "
          f"{value('ssps', 'ssps/same_speaker_rate')} / {value('ssps_paper', 'ssps/same_speaker_rate')} | "
          f"{value('ssps', 'ssps/coverage')} / {value('ssps_paper', 'ssps/coverage')} | {eer(s, 'baseline'):.2f} | "
          f"{eer(s, 'ssps'):.2f} | {eer(s, 'ssps_paper'):.2f} | {SETTINGS[recommended(s)]} | {s['minutes']:.1f} |")  # fmt: skip
print("\n| corpus | seeds | baseline EER mean (min-max) | gate EER | paper EER | recommended EER | recommended vs baseline |")
print("|---|---|---|---|---|---|---|")
for corpus in args.corpora:
    mine = [s for c, _, s in rows if c == corpus]
    if not mine:
        continue
    columns = {key: np.array([eer(s, key) for s in mine]) for key in SETTINGS}
    columns["recommended"] = np.array([eer(s, recommended(s)) for s in mine])
    cells = [f"{v[np.isfinite(v)].mean():.2f} ({v[np.isfinite(v)].min():.2f}-{v[np.isfinite(v)].max():.2f})" if np.isfinite(v).any() else "-"
             for v in columns.values()]  # fmt: skip
    change = (columns["recommended"].mean() - columns["baseline"].mean()) / columns["baseline"].mean() * 100
    print(f"| {corpus} | {len(mine)} | " + " | ".join(cells) + f" | {change:+.1f} % |")

# the diagnostic against the truth, over every base checkpoint of every run
points = []
for corpus in args.corpora:
    for seed in args.seeds:
        validation = args.output_dir / f"{corpus}-s{seed}" / "validation.json"
        if validation.exists():
            points += [(f"{corpus} s{seed}", row) for row in json.loads(validation.read_text())["rows"]]
if points:
    truth = np.array([row["pool_same_speaker"] for _, row in points])
    print(f"\nLabel-free statistics vs the true pool same-speaker rate ({len(points)} base checkpoints, "
          f"{len({c.split()[0] for c, _ in points})} corpora; Pearson r, Spearman rho):\n")
    print("| statistic | range | Pearson r | Spearman rho |")
    print("|---|---|---|---|")
    for name in ("seed_agreement", "pool_agreement", "crop_knn_overlap", "mutual_knn", "knn_same_speaker"):
        values = np.array([row[name] for _, row in points])
        rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        pearson = float(np.corrcoef(values, truth)[0, 1])
        spearman = float(np.corrcoef(rank(values), rank(truth))[0, 1])
        label = " (uses labels)" if name == "knn_same_speaker" else ""
        print(f"| {name}{label} | {values.min():.3f}-{values.max():.3f} | {pearson:.3f} | {spearman:.3f} |")
    print("\n| corpus, seed | checkpoint | seed agreement | pool agreement | crop kNN overlap | pool same speaker | gated same speaker |")
    print("|---|---|---|---|---|---|---|")
    for corpus, row in points:
        print(f"| {corpus} | {Path(row['checkpoint']).name} | {row['seed_agreement']:.3f} | {row['pool_agreement']:.3f} | "
              f"{row['crop_knn_overlap']:.3f} | {row['pool_same_speaker']:.3f} | {row['agreed_same_speaker']:.3f} |")  # fmt: skip

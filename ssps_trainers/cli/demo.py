"""The main job on the embedded demo corpus: does SSPS remove the channel shortcut?

    ssps-demo [--quick] [--output_dir outputs/demo]      (python scripts/demo.py in a checkout)
    ssps-demo --method dino --output_dir outputs/demo_dino   (the same job with DINO)

1. synthesise the demo corpus (VoxCeleb layout, per-session channels) and augmentation sets
2. prepare 🤗 datasets (Arrow + parquet) with prepare_voxceleb.py
3. train a SimCLR base model (recipe demo/simclr; --method dino: demo/dino, whose step
   costs several SimCLR steps on a CPU)
4. diagnose the bootstrap without labels (diagnose_ssps.py) and print the verdict: will the
   paper's SSPS help? It picks the SSPS setting of step 6.
5. fill the SSPS stores on the base checkpoint (fill_ssps_queues.py, the published recipe)
6. continue the base for the same number of epochs: without SSPS (baseline) and with the paper's
   SSPS (demo/simclr_ssps_paper) when the verdict expects it to help, else with the agreement
   gate (demo/simclr_ssps) for comparison; with --compare_paper both
7. average the last checkpoints of each, evaluate them on the cross-session trial list
8. print a table (EER, minDCF, pseudo-positive same-speaker / same-session rates, coverage)
9. write a Hub-ready model folder of the recommended encoder: the paper's SSPS continuation when
   the verdict expects SSPS to help, else the baseline (weights, config, extractor, code)

Every step is one of the documented CLIs run as a subprocess, and every step is skipped when
its output exists, so an interrupted demo continues where it stopped (training resumes from the
newest checkpoint). --quick uses the tiny corpus and a few epochs (CI runs it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

from modeling_ssps import SSPSFeatureExtractor, SSPSModel
from ssps_trainers.checkpoints import latest_complete_checkpoint, list_checkpoints, ssl_state_sections
from ssps_trainers.cli import COMMANDS, load_recipe, resolve_recipe
from ssps_trainers.evaluation import published_encoder
from ssps_trainers.ssps_diagnostics import VERDICT_STATISTIC, VERDICT_THRESHOLD, paper_ssps_recommended

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--output_dir", type=Path, default=Path("outputs/demo"))
parser.add_argument("--quick", action="store_true", help="Tiny corpus, a few epochs: about 3 minutes.")
parser.add_argument("--average_last", type=int, default=None, help="Checkpoints averaged (default 5; quick 2).")
parser.add_argument("--backend", choices=["synth", "tts"], default="synth",
                    help="Demo voices: synth (numpy source-filter, the measured default) or tts (espeak-ng variants).")
parser.add_argument("--corpus_seed", type=int, default=1717, help="Seed of the synthetic corpus (other seeds: other voices and rooms).")
parser.add_argument("--compare_paper", action="store_true", help="Also run the paper's SSPS (no gate) as a third continuation (+5 min).")
parser.add_argument("--voice_spread", type=float, default=1.0, help="synth voices: 1 the demo corpus, 0.5 a harder one of more similar voices.")
parser.add_argument("--seed", type=int, default=1717, help="Training seed of every run (model init, crops, augmentation, SSPS draws).")
parser.add_argument("--method", choices=["simclr", "dino"], default="simclr",
                    help="SSL framework of every run: the recipes demo/<method>[_baseline|_ssps|_ssps_paper].")
args = parser.parse_args()
out = args.output_dir
start = time.perf_counter()
if args.quick:
    preset, average = "tiny", args.average_last or 2
    overrides = ["--per_device_train_batch_size", "8", "--ssps_num_clusters", "6", "--ssps_queue_size", "8",
                 "--logging_steps", "2", "--dataloader_num_workers", "0", "--disable_tqdm", "true"]  # fmt: skip
    base_epochs, extra_epochs = 4, 2
else:
    preset, average, overrides = "demo", args.average_last or 5, []
    base_epochs, extra_epochs = 12, 6


def run(module: str, *arguments: str) -> None:
    """One step: `ssps-<command>` as a child process (the installed package, any working directory)."""
    print(f"\n$ ssps-{next(c for c, m in COMMANDS.items() if m == module)}", " ".join(arguments), flush=True)
    subprocess.run([sys.executable, "-m", f"ssps_trainers.cli.{module}", *arguments], check=True)


def last_checkpoint(run_dir: Path) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise SystemExit(f"no checkpoint in {run_dir}")
    return found[-1]


# 1-2. data
corpus, augment, prepared = out / "corpus", out / "augment", out / "prepared"
if not (corpus / "corpus.json").exists():
    run("make_demo_corpus", "--output_dir", str(corpus), "--preset", preset, "--backend", args.backend,
        "--seed", str(args.corpus_seed), "--voice_spread", str(args.voice_spread))  # fmt: skip
if not (augment / "rirs").exists():
    run("make_augmentation_sets", "--output_dir", str(augment), "--files", "8" if args.quick else "20")
if not (prepared / "report.json").exists():
    run("prepare_voxceleb", "--train_root", str(corpus / "train" / "wav"), "--test_root", str(corpus / "test" / "wav"),
        "--trials", str(corpus / "test" / "trials_cross_session.txt"), str(corpus / "test" / "trials_same_session.txt"),
        "--output_dir", str(prepared), "--parquet_shards", "2")  # fmt: skip
data = ["--dataset", str(prepared / "train"), "--musan_dir", str(augment / "musan"), "--rir_dir", str(augment / "rirs"),
        "--seed", str(args.seed)]  # fmt: skip

# 3. base SSL
base = out / "base"
if not (base / "final").exists():
    run("train", "--recipe", f"demo/{args.method}", *data, "--output_dir", str(base),
        "--num_train_epochs", str(base_epochs), *overrides)  # fmt: skip
base_checkpoint = latest_complete_checkpoint(base) or last_checkpoint(base)

# 4. label-free diagnostic of the bootstrap: the verdict before any SSPS continuation
ssps_settings = load_recipe(resolve_recipe(f"demo/{args.method}_ssps"))
clusters, queue = ("6", "8") if args.quick else (str(ssps_settings["ssps_num_clusters"]), str(ssps_settings["ssps_queue_size"]))
diagnosis = out / "diagnosis.json"
if not diagnosis.exists():
    run("diagnose_ssps", "--checkpoint", str(base_checkpoint), "--dataset", str(prepared / "train"),
        "--ssps_num_clusters", clusters, "--ssps_neighbour_clusters", str(ssps_settings["ssps_neighbour_clusters"]),
        "--seed", str(args.seed), "--output", str(diagnosis))  # fmt: skip
diagnosed = json.loads(diagnosis.read_text())["rows"][-1]
print(f"bootstrap diagnostic: {VERDICT_STATISTIC} {diagnosed[VERDICT_STATISTIC]:.3f} -> the paper's SSPS is {diagnosed['verdict']}", flush=True)

# 5. filling pass on the base checkpoint (the stores the SSPS continuations start with)
ssps_flags = ["--ssps", "--ssps_start_epoch", str(base_epochs), "--ssps_num_clusters", clusters, "--ssps_queue_size", queue]
if "ssps" not in ssl_state_sections(base_checkpoint):
    run("fill_ssps_queues", "--checkpoint", str(base_checkpoint), "--dataset", str(prepared / "train"),
        "--method", args.method, "--output_dir", str(out / "fill"), "--use_cpu", "--report_to", "none", "--seed", str(args.seed),
        *ssps_flags)  # fmt: skip

# 6. equal-epoch continuations: the baseline, and the SSPS setting the diagnostic recommends
# (the paper's SSPS when the bootstrap is likely good enough, else the agreement gate)
LABEL = {"simclr": "SimCLR", "dino": "DINO"}[args.method]
SETTINGS = {  # name: (recipe, extra flags, table label)
    "baseline": (f"demo/{args.method}_baseline", [], f"{LABEL} baseline"),
    "ssps": (f"demo/{args.method}_ssps", ssps_flags, f"{LABEL} + SSPS, agreement gate"),
    "ssps_paper": (f"demo/{args.method}_ssps_paper", ssps_flags, f"{LABEL} + SSPS, paper"),
}
# The recommendation: the paper's SSPS where the verdict expects it to help, else no SSPS at all.
# The agreement gate still runs on a weak verdict, for the table: over the study's runs it never
# beat the equal-epoch baseline (docs/ssps_robustness.md §3.2), so it is not what we publish.
paper = paper_ssps_recommended(diagnosed)
recommended = "ssps_paper" if paper else "baseline"
chosen = ["baseline", "ssps", "ssps_paper"] if args.compare_paper else ["baseline", "ssps_paper" if paper else "ssps"]
RUNS = {name: SETTINGS[name] for name in chosen}
total_epochs = str(base_epochs + extra_epochs)
for name, (recipe, extra, _) in RUNS.items():
    run_dir = out / name
    if (run_dir / "final").exists():
        continue
    resume = [] if latest_complete_checkpoint(run_dir) else ["--resume_from_checkpoint", str(base_checkpoint)]
    run("train", "--recipe", recipe, *data, "--output_dir", str(run_dir), "--num_train_epochs", total_epochs,
        *resume, *extra, *overrides)  # fmt: skip

# 7. average and evaluate
results = {}
for name in RUNS:
    averaged = out / name / "averaged"
    if not (averaged / "model.safetensors").exists():
        run("average_checkpoints", "--run_dir", str(out / name), "--last", str(average), "--output_dir", str(averaged))
    if not (averaged / "eval" / "report.json").exists():
        run("evaluate_sv", "--model", str(averaged), "--test_dataset", str(prepared / "test"),
            "--trials", str(prepared / "trials" / "trials_cross_session.txt"), str(prepared / "trials" / "trials_same_session.txt"))  # fmt: skip
    report = json.loads((averaged / "eval" / "report.json").read_text())
    history = json.loads((last_checkpoint(out / name) / "trainer_state.json").read_text())["log_history"]
    diagnostics = {}
    for key in ("ssps/coverage", "ssps/same_speaker_rate", "ssps/same_video_rate", "ssps/seed_agreement"):
        values = [h[key] for h in history if key in h and h[key] == h[key]]
        diagnostics[key] = float(np.mean(values)) if values else None
    results[name] = {"cross": report["lists"]["trials_cross_session.txt"], "same": report["lists"]["trials_same_session.txt"], **diagnostics}

# 8. table
corpus_report = json.loads((corpus / "corpus.json").read_text())
speakers = corpus_report["train_speakers"]
print(f"\nDemo ({preset} corpus, {corpus_report['train_utterances']} training utterances, {speakers} speakers; "
      f"{LABEL} base {base_epochs} epochs, then +{extra_epochs} epochs each; seed {args.seed})\n")  # fmt: skip
print(f"Bootstrap diagnostic (label-free): {VERDICT_STATISTIC} {diagnosed[VERDICT_STATISTIC]:.3f} (threshold {VERDICT_THRESHOLD}): "
      f"the paper's SSPS is {diagnosed['verdict']}; recommended: {SETTINGS[recommended][2]}\n")  # fmt: skip
print("| model | cross-session EER (%) | minDCF 0.01 | minDCF 0.05 | same-session EER (%) | pseudo-pos. same speaker | pseudo-pos. same session | coverage |")
print("|---|---|---|---|---|---|---|---|")
fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
for name, r in results.items():
    print(f"| {RUNS[name][2]}{' (recommended)' if name == recommended else ''} | {r['cross']['eer_percent']:.2f} | {r['cross']['min_dcf_0.01']:.4f} | "
          f"{r['cross']['min_dcf_0.05']:.4f} | {r['same']['eer_percent']:.2f} | {fmt(r['ssps/same_speaker_rate'])} | "
          f"{fmt(r['ssps/same_video_rate'])} | {fmt(r['ssps/coverage'])} |")  # fmt: skip
print(f"| chance rate for a random other utterance | | | | | {1 / speakers:.3f} | | |")

# 9. Hub-ready folder of the recommended encoder (of its averaged run)
folder = out / "model"
encoder = published_encoder(out / recommended / "averaged")  # as ssps-export publishes it
encoder.config.threshold = float(results[recommended]["cross"]["eer_threshold"])  # calibrated on the cross-session trials
encoder.config.threshold_source = "eer of the demo corpus (trials_cross_session.txt)"
extractor = SSPSFeatureExtractor(sampling_rate=encoder.config.sampling_rate)
encoder.save_pretrained(folder)
extractor.save_pretrained(folder)
pipeline("speaker-verification", model=encoder.eval(), feature_extractor=extractor).save_pretrained(folder)
(folder / "eval_results.json").write_text(json.dumps(results[recommended], indent=2))
with torch.no_grad():  # the folder loads and embeds
    check = SSPSModel.from_pretrained(folder).eval()(input_values=torch.zeros(1, encoder.config.sampling_rate)).embeddings
(out / "summary.json").write_text(json.dumps({"results": results, "diagnosis": diagnosed, "recommended": recommended, "seed": args.seed,
                                               "minutes": (time.perf_counter() - start) / 60}, indent=2))  # fmt: skip
print(f"\nHub-ready folder: {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))}); "
      f"embedding size {check.shape[-1]}; wall time {(time.perf_counter() - start) / 60:.1f} min")

"""Speaker verification on VoxCeleb1-O/E/H-format trial lists: EER and minDCF as JSON.

    python scripts/evaluate_sv.py --model runs/simclr_ssps/averaged --test_dataset data/prepared/test \\
        --trials data/prepared/trials/veri_test2.txt [--norm asnorm --cohort_dataset data/prepared/train]
    python scripts/evaluate_sv.py --model my-model --audio_root VoxCeleb1/wav --trials veri_test2.txt

The test utterances come from any 🤗 audio dataset (--test_dataset: a folder or Hub id, any
sampling rate; trial names match its --id_column, else its files' paths), or straight from the
audio files the trial lists name under --audio_root (wav, flac, m4a, ...; no prepare step).

--model is a save_pretrained folder of SSPSModel or SSPSForPreTraining (then --encoder picks the
student, or the teacher for DINO). Each test utterance is embedded once at full length (batched
by length with masks), trials are scored with cosine (optionally S-norm / AS-norm against a
cohort of unlabelled training embeddings), and the report goes to --output_dir/report.json with
a DET curve and score histograms (PNG).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ssps_trainers.audio_datasets import add_arguments, columns_from, files_dataset, load_audio_dataset, standardize, utterance_names
from ssps_trainers.corpus import load_trials
from ssps_trainers.evaluation import embed_rows, load_evaluated_encoder, score_trials, verification_metrics
from ssps_trainers.metrics import error_rates

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--model", type=Path, required=True)
parser.add_argument("--encoder", choices=["auto", "student", "teacher"], default="auto", help="auto: teacher for DINO, else student.")
parser.add_argument("--test_dataset", default=None, help="Test utterances: any 🤗 audio dataset (folder or Hub id).")
parser.add_argument(
    "--audio_root", type=Path, default=None, help="Instead of --test_dataset: the folder the trial lists' names are relative to."
)
parser.add_argument("--trials", type=Path, nargs="+", required=True, help="Trial lists (label enroll test).")
parser.add_argument("--output_dir", type=Path, default=None, help="Report folder (default: <model>/eval).")
parser.add_argument("--norm", choices=["none", "snorm", "asnorm"], default="none")
parser.add_argument("--cohort_dataset", default=None, help="Unlabelled training utterances for the cohort (any 🤗 audio dataset).")
parser.add_argument("--cohort_size", type=int, default=2000)
parser.add_argument("--top_k", type=int, default=300, help="AS-norm top-k cohort scores.")
parser.add_argument("--batch_size", type=int, default=16)
parser.add_argument("--no_plots", action="store_true")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
add_arguments(parser)
args = parser.parse_args()
if (args.test_dataset is None) == (args.audio_root is None):
    raise SystemExit("give exactly one of --test_dataset and --audio_root")

# model: the evaluated encoder (docs/method.md §11.2)
try:
    encoder = load_evaluated_encoder(args.model, args.encoder).to(args.device).eval()
except ValueError as error:
    raise SystemExit(str(error)) from error

# data: only the utterances the trial lists name are embedded
for path in args.trials:
    if not path.exists():
        raise SystemExit(f"{path} does not exist")
try:
    trial_lists = {path: load_trials(path) for path in args.trials}
except (OSError, ValueError) as error:
    raise SystemExit(str(error)) from error
needed = sorted({u for trials in trial_lists.values() for _, a, b in trials for u in (a, b)})
rate = encoder.config.sampling_rate
try:
    if args.audio_root is not None:
        test = standardize(files_dataset(args.audio_root, needed), rate)
    else:
        test = standardize(load_audio_dataset(args.test_dataset, args.split), rate, columns_from(args))
    all_names = utterance_names(test, needed)
except (OSError, ValueError) as error:
    raise SystemExit(str(error)) from error
wanted = set(needed)
rows = [i for i, name in enumerate(all_names) if name in wanted]
names = [all_names[i] for i in rows]
embeddings = embed_rows(encoder, test, rows, args.batch_size, progress=True)
cohort = None
if args.norm != "none":
    if args.cohort_dataset is None:
        raise SystemExit(f"--norm {args.norm} needs --cohort_dataset")
    try:
        pool = standardize(load_audio_dataset(args.cohort_dataset, args.split), rate, columns_from(args))
    except (OSError, ValueError) as error:
        raise SystemExit(f"cohort: {error}") from error
    cohort_rows = np.random.default_rng(0).permutation(len(pool))[: args.cohort_size].tolist()
    cohort = embed_rows(encoder, pool, cohort_rows, args.batch_size, progress=True)

# score every trial list
output = args.output_dir or args.model / "eval"
output.mkdir(parents=True, exist_ok=True)
report = {"model": str(args.model), "norm": args.norm, "lists": {}}
for path, trials in trial_lists.items():
    try:
        scores, labels = score_trials(embeddings, names, trials, cohort, args.norm, args.top_k)
    except ValueError as error:
        raise SystemExit(f"{path}: {error}") from error
    metrics = verification_metrics(scores, labels)
    report["lists"][path.name] = metrics
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy.stats import norm

        rates = error_rates(scores, labels)
        fig, (det, hist) = plt.subplots(1, 2, figsize=(10, 4))
        clip = lambda p: norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))  # noqa: E731
        det.plot(clip(rates.fpr), clip(rates.fnr))
        ticks = [0.001, 0.01, 0.05, 0.2, 0.5]
        det.set_xticks(clip(np.array(ticks)), [f"{100 * t:g}" for t in ticks])
        det.set_yticks(clip(np.array(ticks)), [f"{100 * t:g}" for t in ticks])
        det.set_xlabel("false alarm rate (%)"), det.set_ylabel("miss rate (%)"), det.set_title(f"DET, EER {metrics['eer_percent']:.2f}%")
        hist.hist(scores[labels == 1], bins=50, alpha=0.6, density=True, label="target")
        hist.hist(scores[labels == 0], bins=50, alpha=0.6, density=True, label="non-target")
        hist.legend(), hist.set_xlabel("score"), hist.set_title(path.name)
        fig.tight_layout()
        fig.savefig(output / f"{path.stem}.png", dpi=100)
        plt.close(fig)
(output / "report.json").write_text(json.dumps(report, indent=2))
print("\n| trials | EER (%) | minDCF 0.01 | minDCF 0.05 | trials |\n|---|---|---|---|---|")
for name, m in report["lists"].items():
    print(f"| {name} | {m['eer_percent']:.2f} | {m['min_dcf_0.01']:.4f} | {m['min_dcf_0.05']:.4f} | {m['trials']} |")
print(f"report: {output / 'report.json'}")

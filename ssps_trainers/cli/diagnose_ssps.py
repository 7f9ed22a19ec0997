"""Will SSPS help on this data? Label-free bootstrap diagnostics before an SSPS continuation.

    python scripts/diagnose_ssps.py --checkpoint runs/base/checkpoint-N --dataset data/prepared/train \\
        --ssps_num_clusters 480 --ssps_neighbour_clusters 1 [--output report.json]

Embeds two independent clean 4 s crops of every training utterance with the encoder SSPS
takes its references from (DINO: the teacher), clusters them as SSPS would (K, M), and reports
the label-free statistics of `ssps_trainers.ssps_diagnostics` with a verdict; where the dataset has
`speaker_id` / `video_id` columns the label-based rates are printed next to them. Several
`--checkpoint`s give one row each (e.g. the epochs of a base run). The verdict reads
`ssps_trainers.ssps_diagnostics.paper_ssps_recommended` (a threshold on one label-free
statistic): when it holds the paper's SSPS is recommended (`--ssps_gate none`); below it the paper's
SSPS is likely to hurt, and the recommendation is no SSPS (continue the base without it, or train
it longer and diagnose again; the agreement gate, `--ssps_gate agreement`, never beat the
baseline in our runs). docs/ssps_robustness.md has the validation behind the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_ssps import SSPSConfig
from ssps_trainers.audio_datasets import add_arguments, columns_from, load_audio_dataset, standardize
from ssps_trainers.data import audio_length, decoded, random_crop
from ssps_trainers.evaluation import load_evaluated_encoder
from ssps_trainers.methods import eval_mode
from ssps_trainers.ssps_diagnostics import VERDICT_STATISTIC, VERDICT_THRESHOLD, bootstrap_diagnostics, paper_ssps_recommended

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="Checkpoint or model folder(s).")
parser.add_argument("--dataset", required=True, help="Training set: any 🤗 audio dataset (folder or Hub id).")
parser.add_argument("--ssps_num_clusters", type=int, required=True, help="K of the SSPS run.")
parser.add_argument("--ssps_neighbour_clusters", type=int, default=1, help="M of the SSPS run.")
parser.add_argument("--ssps_kmeans_iters", type=int, default=10)
parser.add_argument("--reference_seconds", type=float, default=4.0)
parser.add_argument("--encoder", choices=["auto", "student", "teacher"], default="auto", help="auto: the DINO teacher, else the student.")
parser.add_argument("--seed", type=int, default=1717)
parser.add_argument("--batch_size", type=int, default=64)
parser.add_argument("--output", type=Path, default=None, help="JSON report (written atomically).")
add_arguments(parser)
args = parser.parse_args()

for folder in args.checkpoint:
    if not (folder / "config.json").exists():
        raise SystemExit(f"{folder}: not a model or checkpoint folder (no config.json)")
rate = SSPSConfig.from_pretrained(args.checkpoint[0]).sampling_rate
try:
    dataset = standardize(load_audio_dataset(args.dataset, args.split), rate, columns_from(args))
except (OSError, ValueError) as error:
    raise SystemExit(f"{args.dataset}: {error}") from error
labels = {}
for column in ("speaker_id", "video_id"):
    if column in dataset.column_names:
        labels[column] = np.asarray(dataset[column]).astype(str)
speaker = torch.as_tensor(np.unique(labels["speaker_id"], return_inverse=True)[1]) if "speaker_id" in labels else None
session = None
if "speaker_id" in labels and "video_id" in labels:
    session = torch.as_tensor(np.unique(np.char.add(np.char.add(labels["speaker_id"], "/"), labels["video_id"]), return_inverse=True)[1])
crop = int(args.reference_seconds * rate)


def crops_of(start: int, stop: int) -> list[np.ndarray]:
    """Two independent clean crops of rows [start, stop), seeded per (seed, crop, row): the same
    crops for every checkpoint, decoded one batch at a time (memory: one batch of audio)."""
    rows = [decoded(dataset[i], rate) for i in range(start, stop)]
    lengths = [audio_length(row, rate) for row in rows]
    return [np.stack([random_crop(row, n, crop, np.random.default_rng([args.seed, 7919, k, i]))
                      for i, row, n in zip(range(start, stop), rows, lengths)]) for k in range(2)]  # fmt: skip


@torch.no_grad()
def embed_both(encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm embeddings (N, D) of the first and of the second crop of every row."""
    first, second = [], []
    with eval_mode(encoder):
        for start in range(0, len(dataset), args.batch_size):
            for waves, out in zip(crops_of(start, min(start + args.batch_size, len(dataset))), (first, second)):
                embeddings = encoder(input_values=torch.from_numpy(waves).float()).embeddings.float()
                out.append(torch.nn.functional.normalize(embeddings, dim=-1))
    return torch.cat(first), torch.cat(second)


report = []
for folder in tqdm(args.checkpoint, desc="diagnosing", disable=len(args.checkpoint) == 1):
    encoder = load_evaluated_encoder(folder, args.encoder)
    first, second = embed_both(encoder)
    stats = bootstrap_diagnostics(first, second, args.ssps_num_clusters, args.ssps_neighbour_clusters,
                                  args.ssps_kmeans_iters, seed=args.seed, speaker=speaker, session=session)  # fmt: skip
    helps = paper_ssps_recommended(stats)
    stats["verdict"] = "likely to help" if helps else "likely to hurt"
    stats["recommended"] = "paper SSPS" if helps else "no SSPS"
    report.append({"checkpoint": str(folder), **stats})

columns = [
    "pool_agreement",
    "seed_agreement",
    "mutual_knn",
    "crop_knn_overlap",
    "knn_same_speaker",
    "pool_same_speaker",
    "pool_same_session",
    "agreed_same_speaker",
    "crop_agreed_same_speaker",
]
shown = [c for c in columns if c in report[0]]
print(f"\nSSPS bootstrap diagnostics (K={args.ssps_num_clusters}, M={args.ssps_neighbour_clusters}, {len(dataset)} utterances"
      f"{', chance same speaker ' + format(1 / len(set(labels['speaker_id'])), '.3f') if speaker is not None else ''})\n")  # fmt: skip
print("| checkpoint | " + " | ".join(shown) + " | verdict |")
print("|---|" + "---|" * (len(shown) + 1))
for row in report:
    print(f"| {Path(row['checkpoint']).name} | " + " | ".join(f"{row[c]:.3f}" for c in shown) + f" | {row['verdict']} |")
last = report[-1]
print(f"\nverdict: the paper's SSPS is {last['verdict']} ({VERDICT_STATISTIC} {last[VERDICT_STATISTIC]:.3f}, threshold {VERDICT_THRESHOLD}); "
      "recommended: " + ("the paper's SSPS (--ssps_gate none)" if paper_ssps_recommended(last) else
                         "no SSPS (continue without --ssps, or train the base longer and diagnose again)"))  # fmt: skip
if args.output:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "rows": report}, indent=2))
    os.replace(temporary, args.output)

"""The paper's embedding analyses on any labelled set (docs/method.md §10), for one or several models.

    python scripts/analyze_embeddings.py --models runs/baseline/averaged runs/ssps/averaged \\
        --dataset data/prepared/test [--output_dir analysis]

Per model: mean intra-speaker and inter-speaker cosine similarity; held-out accuracy of linear
probes (logistic regression, stratified 80/20 split) predicting the speaker and the session
("video": the channel) from embeddings; NMI of spherical k-means assignments (K = number of
speakers) against speaker and against session. Less session information and higher
intra-speaker similarity is what SSPS is expected to give. Prints a table, writes
analysis.json and a similarity-histogram PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modeling_ssps import SSPSConfig
from ssps_trainers.audio_datasets import add_arguments, columns_from, load_audio_dataset, standardize
from ssps_trainers.evaluation import embed_rows, load_evaluated_encoder
from ssps_trainers.kmeans import spherical_kmeans
from ssps_trainers.ssps_diagnostics import normalized_mutual_info

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--models", type=Path, nargs="+", required=True, help="SSPSModel or SSPSForPreTraining folders.")
parser.add_argument("--dataset", required=True, help="Any 🤗 audio dataset (folder or Hub id) with speaker and video columns.")
parser.add_argument("--output_dir", type=Path, default=Path("analysis"))
parser.add_argument("--seed", type=int, default=0)
add_arguments(parser)
args = parser.parse_args()

rate = SSPSConfig.from_pretrained(args.models[0]).sampling_rate
try:
    dataset = standardize(load_audio_dataset(args.dataset, args.split), rate, columns_from(args))
except (OSError, ValueError) as error:
    raise SystemExit(f"{args.dataset}: {error}") from error
for column in ("speaker_id", "video_id"):
    if column not in dataset.column_names:
        raise SystemExit(f"{args.dataset} has no {column} column (pass --speaker_column / --video_column)")
speakers = np.unique(np.asarray(dataset["speaker_id"]), return_inverse=True)[1]
sessions = np.unique(np.asarray([f"{s}/{v}" for s, v in zip(dataset["speaker_id"], dataset["video_id"])]), return_inverse=True)[1]
args.output_dir.mkdir(parents=True, exist_ok=True)


def probe(x: np.ndarray, y: np.ndarray) -> float:
    """Held-out accuracy of a logistic regression, stratified split of about 20 % (at least
    one test example per class); NaN when fewer than two classes have two examples."""
    keep = np.bincount(y)[y] >= 2  # stratification needs two examples per class
    x, y = x[keep], y[keep]
    classes = np.unique(y).size
    if classes < 2:
        return float("nan")
    test_size = max(int(np.ceil(0.2 * y.size)), classes)
    if y.size - test_size < classes:
        return float("nan")
    a, b, ya, yb = train_test_split(x, y, test_size=test_size, random_state=args.seed, stratify=y)
    return float(LogisticRegression(max_iter=2000).fit(a, ya).score(b, yb))


results = {}
similarities = {}
for folder in args.models:
    e = embed_rows(load_evaluated_encoder(folder).eval(), dataset, list(range(len(dataset))), progress=True)
    cos = e @ e.T
    same = speakers[:, None] == speakers[None, :]
    off = ~np.eye(len(e), dtype=bool)
    intra = [cos[i][same[i] & off[i]].mean() for i in range(len(e)) if (same[i] & off[i]).any()]
    k = int(speakers.max() + 1)
    assignment = spherical_kmeans(torch.from_numpy(e), k, 20, torch.Generator().manual_seed(args.seed)).assignment
    results[str(folder)] = {
        "intra_speaker_cosine": float(np.mean(intra)),
        "inter_speaker_cosine": float(cos[~same].mean()),
        "speaker_probe_accuracy": probe(e, speakers),
        "session_probe_accuracy": probe(e, sessions),
        "nmi_speaker": normalized_mutual_info(assignment, torch.from_numpy(speakers)),
        "nmi_session": normalized_mutual_info(assignment, torch.from_numpy(sessions)),
    }
    similarities[str(folder)] = (cos[same & off], cos[~same])

(args.output_dir / "analysis.json").write_text(json.dumps(results, indent=2))
keys = list(next(iter(results.values())))
print("\n| model | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
for name, r in results.items():
    print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(similarities), figsize=(5 * len(similarities), 3.5), squeeze=False)
    for axis, (name, (same_scores, other_scores)) in zip(axes[0], similarities.items()):
        axis.hist(same_scores, bins=50, alpha=0.6, density=True, label="same speaker")
        axis.hist(other_scores, bins=50, alpha=0.6, density=True, label="different speakers")
        axis.set_title(Path(name).parent.name or name), axis.set_xlabel("cosine"), axis.legend()
    fig.tight_layout()
    fig.savefig(args.output_dir / "similarities.png", dpi=100)
except ImportError:
    print("matplotlib not installed: no plot")

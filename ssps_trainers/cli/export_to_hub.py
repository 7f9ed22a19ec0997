"""Stage (and optionally upload) a Hub model repo for an SSPS encoder.

    python scripts/export_to_hub.py --model runs/simclr_ssps/averaged --card simclr-ssps \\
        --eval_report runs/simclr_ssps/averaged/eval/report.json --trials_name veri_test2.txt \\
        --dataset_name "VoxCeleb1-O (cleaned)" --output_dir staging/simclr-ssps \\
        [--push --repo_id ORG/simclr-ssps]

Takes the evaluated encoder of an (averaged) SSPSForPreTraining folder — the student, the query
encoder for MoCo, the teacher for DINO — loads it strictly into `SSPSModel`, and stages:
weights (safetensors only), config with `auto_map` and the remote code, the feature extractor,
the `speaker-verification` pipeline definition, the Inference Endpoints handler, and a model
card rendered from model_cards/TEMPLATE.md with measured numbers only. Dry run by default;
`--push` uploads with huggingface_hub (token from HF_TOKEN or `hf auth login`, never printed).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from transformers import pipeline

from modeling_ssps import SSPSFeatureExtractor
from ssps_trainers.evaluation import published_encoder
from ssps_trainers.outputs import claim_output_dir, replace_dir

CARDS = Path(__file__).resolve().parents[1] / "model_cards"  # card specs, template, endpoint handler (shipped)
PAPER = ("Lepage & Dehak, IEEE/ACM TASLP 2025", "https://arxiv.org/abs/2501.17772")

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--model", type=Path, required=True, help="Averaged SSPSForPreTraining (or SSPSModel) folder.")
parser.add_argument("--encoder", choices=["auto", "student", "teacher"], default="auto", help="auto: teacher for DINO.")
parser.add_argument("--card", required=True, help="Card spec in model_cards/<card>.json (simclr-ssps, dino-ssps, simclr, dino).")
parser.add_argument("--eval_report", type=Path, required=True, help="report.json of ssps-evaluate (scripts/evaluate_sv.py).")
parser.add_argument("--trials_name", required=True, help="Which list of the report the card shows (e.g. veri_test2.txt).")
parser.add_argument("--dataset_name", required=True, help="What the numbers were measured on, e.g. 'VoxCeleb1-O (cleaned)'.")
parser.add_argument("--dataset_type", default="voxceleb", help="Dataset id for model-index.")
parser.add_argument("--base_model", default=None, help="Hub id of the SSL checkpoint this one continues.")
parser.add_argument("--output_dir", type=Path, required=True, help="Staging folder (created; refused if it is not empty unless --overwrite).")
parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output_dir (never one that holds the input or checkpoints).")
parser.add_argument("--repo_id", default="ORG/ssps-speaker-encoder", help="Target repo (used in the card; required with --push).")
parser.add_argument("--license", default="cc-by-4.0")
parser.add_argument("--recipe", default=None, help="Training-recipe paragraph for the card (default: the spec's paper recipe).")
parser.add_argument("--threshold_from", choices=["eer", "min_dcf_0.01", "min_dcf_0.05", "none"], default="eer",
                    help="Decision threshold written into config.threshold, from the report's list --trials_name (default: the EER threshold; none keeps the config's).")
parser.add_argument("--hub_datasets", nargs="*", default=[], help="Hub dataset ids the model was trained on, for the card's `datasets` (only ids that exist on the Hub; default none).")
parser.add_argument("--space_id", default=None, help="Hub id of a Space running this model (the card points to it: the Hub widget cannot run remote code).")
parser.add_argument("--push", action="store_true", help="Upload the staged folder (default: dry run).")
args = parser.parse_args()
claim_output_dir(args.output_dir, args.overwrite, inputs=[args.model, args.eval_report])

spec_path = CARDS / f"{args.card}.json"
if not spec_path.exists():
    raise SystemExit(f"no card spec {spec_path}")
spec = json.loads(spec_path.read_text())
report = json.loads(args.eval_report.read_text())
if args.trials_name not in report.get("lists", {}):
    raise SystemExit(f"{args.eval_report} has no list {args.trials_name!r}; it has {sorted(report.get('lists', {}))}")
metrics = report["lists"][args.trials_name]

# 1. the evaluated encoder, loaded strictly into SSPSModel
try:
    encoder = published_encoder(args.model, args.encoder)
except ValueError as error:
    raise SystemExit(str(error)) from error
if args.threshold_from != "none":  # calibrated: same_speaker means something on this kind of trial
    key = "eer_threshold" if args.threshold_from == "eer" else f"{args.threshold_from}_threshold"
    if key not in metrics:
        raise SystemExit(f"{args.eval_report} list {args.trials_name!r} has no {key}: re-run ssps-evaluate")
    encoder.config.threshold = float(metrics[key])
    encoder.config.threshold_source = f"{args.threshold_from} of {args.dataset_name} ({args.trials_name})"
    threshold_note = (f"calibrated at the {args.threshold_from.replace('_', ' ')} operating point of {args.dataset_name} "
                      f"({metrics['trials']} trials)")  # fmt: skip
else:
    threshold_note = "not calibrated on any trial list: the configuration's value, set by hand; calibrate it on your own trials"

# 2. stage the folder
out = args.output_dir.with_name(args.output_dir.name + ".partial")  # written here, renamed at the end
if out.exists():
    shutil.rmtree(out)  # our own leftover of an interrupted export
out.mkdir(parents=True)
encoder.save_pretrained(out)
extractor = SSPSFeatureExtractor()
extractor.save_pretrained(out)
pipeline("speaker-verification", model=encoder.eval(), feature_extractor=extractor).save_pretrained(out)
for name in ("handler.py", "requirements.txt"):
    shutil.copy(CARDS / "endpoint" / name, out / name)
leftovers = [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
if leftovers:
    raise SystemExit(f"refusing to publish pickles: {leftovers}")

# 3. the card: measured numbers only
eer = round(metrics["eer_percent"], 3)
results = [
    EvalResult(task_type="speaker-verification", dataset_type=args.dataset_type, dataset_name=args.dataset_name,
               dataset_split="test", metric_type="eer", metric_name="EER (%)", metric_value=eer,
               source_name=PAPER[0] + " (recipe); measured with this toolkit", source_url=PAPER[1]),
]  # fmt: skip
for p in ("0.01", "0.05"):
    results.append(EvalResult(
        task_type="speaker-verification", dataset_type=args.dataset_type, dataset_name=args.dataset_name,
        dataset_split="test", metric_type="min_dcf", metric_name=f"minDCF (p={p})", metric_value=round(metrics[f"min_dcf_{p}"], 4),
        metric_args={"p_target": float(p), "c_miss": 1, "c_fa": 1}, source_name=PAPER[0] + " (recipe); measured with this toolkit",
        source_url=PAPER[1],
    ))  # fmt: skip
card_data = ModelCardData(
    language=["en"], license=args.license, library_name="transformers", pipeline_tag="feature-extraction",
    tags=["speaker-verification", "speaker-embedding", "speaker-recognition", "audio", encoder.config.encoder_type.replace("_", "-"),
          "self-supervised-learning", "voxceleb", *spec["tags"]],
    datasets=args.hub_datasets or None, metrics=["eer", "min_dcf"], base_model=args.base_model,
    model_name=args.repo_id.split("/")[-1], eval_results=results,
    inference=False,  # the Hub's widget cannot run a remote-code pipeline: disabled rather than broken
)  # fmt: skip
table = (f"| trials | EER (%) | minDCF (p=0.01) | minDCF (p=0.05) |\n|---|---|---|---|\n"
         f"| {args.dataset_name} ({metrics['trials']} trials) | {eer} | {metrics['min_dcf_0.01']:.4f} | {metrics['min_dcf_0.05']:.4f} |")  # fmt: skip
card = ModelCard.from_template(
    card_data, template_path=str(CARDS / "TEMPLATE.md"), title=spec["title"],
    method_name=spec["method_name"], ssps=spec["ssps"], embedding_dim=encoder.config.embedding_dim,
    threshold=round(encoder.config.threshold, 4), threshold_note=threshold_note, repo_id=args.repo_id, results_table=table,
    results_note=f"Measured with `ssps-evaluate` on {args.dataset_name}; cosine scoring, no score normalisation.",
    recipe=args.recipe or spec["recipe"], limitations=spec["limitations"], space_id=args.space_id,
    encoder_description={"ecapa_tdnn": "ECAPA-TDNN", "fast_resnet34": "Fast ResNet-34"}[encoder.config.encoder_type],
)  # fmt: skip
card.save(out / "README.md")
replace_dir(out, args.output_dir)
out = args.output_dir
print(f"staged {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")

# 4. upload (explicit opt-in)
if args.push:
    if args.repo_id.startswith("ORG/"):
        raise SystemExit("--push needs a real --repo_id")
    api = HfApi()
    api.create_repo(args.repo_id, exist_ok=True)
    commit = api.upload_folder(folder_path=str(out), repo_id=args.repo_id, commit_message="Upload SSPS speaker encoder")
    print(f"uploaded to {args.repo_id}: {commit.oid if hasattr(commit, 'oid') else commit}")
else:
    print("dry run: pass --push --repo_id ORG/NAME to upload")

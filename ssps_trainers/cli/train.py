"""Train a self-supervised speaker encoder, optionally with SSPS.

    ssps-train --method dino --ssps --dataset data/prepared/train ...
    accelerate launch scripts/train.py --method dino --ssps ...      (in a checkout; or -m ssps_trainers.cli.train)

`--method`, `--encoder` and `--ssps` pick a shipped recipe, `<encoder>/<method>[_ssps]` (the JSON
files of ssps_trainers/recipes, `configs/` in a checkout), whose values become the defaults;
flags given explicitly override them. `--recipe NAME|FILE` picks another, by name (e.g.
`ecapa/simclr_baseline`, the equal-epoch continuation) or path. Reads top to bottom: parse, data, model,
trainer, train, save. Resumes automatically from the newest checkpoint in --output_dir.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, set_seed

from modeling_ssps import SSPSConfig, SSPSFeatureExtractor, SSPSForPreTraining
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments
from ssps_trainers.audio_datasets import DatasetColumns, load_audio_dataset, position_indexed, standardize
from ssps_trainers.checkpoints import latest_complete_checkpoint
from ssps_trainers.cli import RECIPES, apply_recipe, pop_recipe, resolve_recipe
from ssps_trainers.corpus import load_trials
from ssps_trainers.data import WaveformAugment
from ssps_trainers.methods import METHOD_CLASSES

ENCODER_FOLDERS = {"ecapa_tdnn": "ecapa", "fast_resnet34": "resnet34"}


@dataclass
class ModelArguments:
    encoder: str = field(default="ecapa_tdnn", metadata={"help": "ecapa_tdnn (paper, C=1024) or fast_resnet34 (ablations)."})
    ecapa_channels: int = field(default=1024, metadata={"help": "ECAPA width C (1024 paper; 512 is the small variant)."})
    resnet_channels: str = field(default="16,32,64,128", metadata={"help": "Fast ResNet-34 stage widths."})
    resnet_layers: str = field(default="3,4,6,3", metadata={"help": "Fast ResNet-34 blocks per stage."})
    n_mels: int | None = field(default=None, metadata={"help": "Mel bins (default: the method's, 40; DINO-ECAPA 80)."})
    window: str | None = field(default=None, metadata={"help": "hamming or hann (default: the method's, hamming; DINO-ECAPA hann)."})
    dino_output_dim: int = field(default=65536, metadata={"help": "DINO head output (65,536)."})
    forward_per_view: bool = field(default=False, metadata={"help": "One encoder/head forward per view (DINO: per crop group), each its own BatchNorm batch, as the reference (paper recipes: true)."})
    swav_num_prototypes: int = field(default=3000, metadata={"help": "SwAV prototypes (3,000)."})


@dataclass
class DataArguments:
    dataset: str = field(
        default="data/prepared/train",
        metadata={"help": "Any 🤗 audio dataset: save_to_disk folder, parquet/audiofolder folder, or a Hub id."},
    )
    streaming: bool = field(default=False, metadata={"help": "Stream it: needs --max_steps and --num_train_samples (the stream's length)."})
    shuffle_buffer: int = field(default=10000, metadata={"help": "Streaming shuffle buffer (rows)."})
    eval_dataset: str | None = field(
        default=None, metadata={"help": "Test utterances (any 🤗 audio dataset with utt_id) for periodic EER."}
    )
    eval_split: str | None = field(default=None, metadata={"help": "Split of --eval_dataset (default: its only one, else 'train')."})
    eval_trials: str | None = field(default=None, metadata={"help": "Trial list (label enroll test) over --eval_dataset."})
    musan_dir: str | None = field(default=None, metadata={"help": "MUSAN-layout folder (noise/ speech/ music/); none: no additive noise."})
    rir_dir: str | None = field(default=None, metadata={"help": "RIR folder; none: no reverberation."})
    musan_chunk_seconds: float = field(default=0.0, metadata={"help": "Draw noise over chunks of this length, as the reference does after cutting MUSAN into 8 s files (paper recipes: 8); 0: whole files."})
    augment: str | None = field(default=None, metadata={"help": "reverb+noise (default) or all (DINO default) or none."})
    crop_seconds: float = field(default=2.0, metadata={"help": "View length (2 s); DINO local crops."})
    dino_global_seconds: float | None = field(default=None, metadata={"help": "DINO global crop length (default: the method's, 4 s)."})


# 1. recipe defaults, then explicit flags
argv, recipe_name = pop_recipe(sys.argv[1:])  # --recipe is consumed here, not a dataclass field
pre = argparse.ArgumentParser(add_help=False)
pre.add_argument("--method", default="simclr", choices=sorted(METHOD_CLASSES))
pre.add_argument("--encoder", default="ecapa_tdnn", choices=sorted(ENCODER_FOLDERS))
pre.add_argument("--ssps", action="store_true")
known, _ = pre.parse_known_args(argv)
if recipe_name is not None:
    recipe_path: Path | None = resolve_recipe(recipe_name)
else:
    default = RECIPES / ENCODER_FOLDERS[known.encoder] / f"{known.method}{'_ssps' if known.ssps else ''}.json"
    recipe_path = default if default.is_file() else None
parser = HfArgumentParser((ModelArguments, DataArguments, DatasetColumns, SSLTrainingArguments), description=__doc__ + (
    "\n--recipe NAME|FILE: a shipped recipe (e.g. ecapa/simclr_ssps) or a JSON file (default: <encoder>/<method>[_ssps])."))  # fmt: skip
if recipe_path is not None:
    apply_recipe(parser, recipe_path, strict=True)
try:
    model_args, data_args, columns, training = parser.parse_args_into_dataclasses(args=argv)
except ValueError as error:  # a refused or malformed setting: its message, not a traceback
    raise SystemExit(f"{recipe_path or 'settings'}: {error}") from error
print(f"recipe: {recipe_path or 'none'}", file=sys.stderr)
# seed before anything random is built (model init, heads, MoCo queues): same command, same run
set_seed(training.seed)

# 2. data: any 🤗 audio dataset, standardised (audio at the model's rate, sample_index derived)
method = METHOD_CLASSES[training.method]  # what the method needs: heads, teacher, crops, front-end
frontend = method.frontend_defaults(model_args.encoder)
c = model_args.ecapa_channels
config = SSPSConfig(
    encoder_type=model_args.encoder,
    ecapa_channels=(c, c, c, c, 3 * c),
    resnet_channels=tuple(int(x) for x in model_args.resnet_channels.split(",")),
    resnet_layers=tuple(int(x) for x in model_args.resnet_layers.split(",")),
    n_mels=model_args.n_mels or frontend["n_mels"],
    window=model_args.window or frontend["window"],
    head_type=method.head_type,
    has_teacher=method.needs_teacher,
    dino_output_dim=model_args.dino_output_dim,
    swav_num_prototypes=model_args.swav_num_prototypes,
    forward_per_view=model_args.forward_per_view,
)
rate = config.sampling_rate
if data_args.streaming and (training.max_steps <= 0 or training.num_train_samples is None):
    raise SystemExit("--streaming needs --max_steps and --num_train_samples (virtual epochs)")
try:
    raw = load_audio_dataset(data_args.dataset, columns.split, data_args.streaming)
    if data_args.streaming and position_indexed(raw, columns) and training.dataloader_num_workers > 1 and raw.num_shards > 1:
        raise SystemExit(f"{data_args.dataset}: a stream without an index column ({columns.index_column}) is numbered by position, "
                         f"which {training.dataloader_num_workers} dataloader workers over {raw.num_shards} shards would break: "
                         "pass --index_column or --dataloader_num_workers 1")  # fmt: skip
    train_dataset = standardize(raw, rate, columns, training.num_train_samples)
    eval_dataset = (
        standardize(load_audio_dataset(data_args.eval_dataset, data_args.eval_split), rate, columns) if data_args.eval_dataset else None
    )
    eval_trials = load_trials(data_args.eval_trials) if data_args.eval_trials else None
except (OSError, ValueError) as error:
    raise SystemExit(f"training data: {error}") from error
if data_args.streaming:
    train_dataset = train_dataset.shuffle(seed=training.seed, buffer_size=data_args.shuffle_buffer).repeat(None)
    training.ignore_data_skip = True
strategy = data_args.augment or method.augment_strategy
collator = MultiViewCollator(
    num_views=2,
    crop_samples=int(((data_args.dino_global_seconds or method.global_crop_seconds) if method.global_crop_seconds else data_args.crop_seconds) * rate),
    local_views=training.dino_local_views if method.local_views else 0,
    local_crop_samples=int(data_args.crop_seconds * rate),
    reference_samples=int(training.ssps_reference_seconds * rate) if training.ssps or training.ssps_reference_train_mode else None,
    augment=WaveformAugment(data_args.musan_dir, data_args.rir_dir, strategy, data_args.musan_chunk_seconds, rate) if strategy != "none" else None,
    seed=training.seed,
    sampling_rate=rate,
)
if data_args.streaming:
    collator.epoch = None

# 3. model (its config was built before the data: the data are read at config.sampling_rate)
model = SSPSForPreTraining(config)

# 4. trainer
trainer = SSLTrainer(
    model=model,
    args=training,
    train_dataset=train_dataset,
    eval_dataset=eval_dataset,
    eval_trials=eval_trials,
    data_collator=collator,
    processing_class=SSPSFeatureExtractor(sampling_rate=rate),
)

# 5. train (continuing automatically from the newest checkpoint of --output_dir)
resume = training.resume_from_checkpoint
if resume is None:
    latest = latest_complete_checkpoint(training.output_dir)  # incomplete saves are skipped, with a warning
    if latest is not None:
        resume = str(latest)
        print(f"resuming from {resume}", file=sys.stderr)
trainer.train(resume_from_checkpoint=resume)

# 6. save the final model (weights, config, feature extractor, code)
trainer.save_model(str(Path(training.output_dir) / "final"))

"""Fill the SSPS stores from a base checkpoint: the published recipe's filling pass (docs/method.md §4).

    ssps-fill --recipe ecapa/simclr_ssps --checkpoint runs/simclr/checkpoint-N --dataset data/prepared/train
    accelerate launch scripts/fill_ssps_queues.py ...     (in a checkout, several processes)

`--recipe` reads the SSPS run's recipe (K, P, M, method, seed), as `ssps-train` does; explicit
flags override it.

The views are augmented as in training (the method's strategy, `--musan_dir` / `--rir_dir` /
`--musan_chunk_seconds` as given to `ssps-train`, read from the recipe where it sets them): the
reference implementation's filling pass runs over its augmented training loader. Without either
folder the views are clean (`--augment none` asks for that explicitly); the SSPS reference crops
are clean either way.

One epoch, the whole model in eval() and under no_grad, forward passes and SSPS pushes only:
no optimiser step, and the MoCo/SwAV/DINO state is left untouched. Writes (or replaces) the
`ssps.*` section of the checkpoint's `ssl_state.safetensors` (temp file + rename), so that
`train.py --ssps --resume_from_checkpoint <checkpoint>` starts epoch S with full stores.
The order is a seeded permutation for epoch S (seed, S); the table content after a full pass is
order-independent, the queue then holds the last P samples of that order.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from modeling_ssps import SSPSConfig, SSPSForPreTraining
from ssps_trainers import MultiViewCollator, SSLTrainingArguments, seeds
from ssps_trainers.audio_datasets import DatasetColumns, load_audio_dataset, standardize
from ssps_trainers.checkpoints import SSL_STATE_NAME, read_ssl_state, write_ssl_state
from ssps_trainers.cli import apply_recipe, pop_recipe, resolve_recipe
from ssps_trainers.data import STRATEGIES, WaveformAugment
from ssps_trainers.dist import gather
from ssps_trainers.methods import METHOD_CLASSES, build_method, gather_views
from ssps_trainers.ssps import SSPS


@dataclass
class FillArguments:
    checkpoint: str = field(metadata={"help": "Base checkpoint folder (checkpoint-N of an SSL run)."})
    dataset: str = field(metadata={"help": "The training set of the run (any 🤗 audio dataset, map-style, same columns options)."})
    batch_size: int = field(default=64, metadata={"help": "Per-process batch of the pass (no gradient: larger is fine)."})
    epoch: int | None = field(default=None, metadata={"help": "Epoch whose order to use (default: ssps_start_epoch)."})
    crop_seconds: float = field(default=2.0, metadata={"help": "View length (2 s); DINO uses its global crop length (4 s)."})
    musan_dir: str | None = field(default=None, metadata={"help": "MUSAN-layout folder, as given to ssps-train (the views are augmented as in training)."})
    rir_dir: str | None = field(default=None, metadata={"help": "RIR folder, as given to ssps-train."})
    musan_chunk_seconds: float = field(default=0.0, metadata={"help": "As ssps-train's (paper recipes: 8)."})
    augment: str | None = field(default=None, metadata={"help": "reverb+noise, all or none (default: the method's, as in training)."})


parser = HfArgumentParser((FillArguments, DatasetColumns, SSLTrainingArguments))
argv, recipe_name = pop_recipe(sys.argv[1:])
if recipe_name is not None:  # the run's own recipe: K, P, M, method... are not repeated by hand
    apply_recipe(parser, resolve_recipe(recipe_name), strict=False)
try:
    fill, columns, training = parser.parse_args_into_dataclasses(args=argv)
except ValueError as error:
    raise SystemExit(str(error)) from error
accelerator = Accelerator(cpu=training.use_cpu)
checkpoint = Path(fill.checkpoint)
if not (checkpoint / "config.json").exists():
    raise SystemExit(f"{checkpoint} is not a checkpoint folder (no config.json)")

# data, in the seeded order of epoch S
rate = SSPSConfig.from_pretrained(checkpoint).sampling_rate
try:
    dataset = standardize(load_audio_dataset(fill.dataset, columns.split), rate, columns)  # sample_index as in train.py
except (OSError, ValueError) as error:
    raise SystemExit(f"{fill.dataset}: {error}") from error
epoch = training.ssps_start_epoch if fill.epoch is None else fill.epoch
order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seeds.fill_order(training.seed, epoch)))
crop = int((METHOD_CLASSES[training.method].global_crop_seconds or fill.crop_seconds) * rate)  # DINO: its global crops
strategy = fill.augment or METHOD_CLASSES[training.method].augment_strategy
if strategy not in STRATEGIES:
    raise SystemExit(f"--augment must be one of {STRATEGIES}, got {strategy!r}")
augment = None
if strategy != "none" and (fill.musan_dir or fill.rir_dir):  # the reference fills over augmented views
    augment = WaveformAugment(fill.musan_dir, fill.rir_dir, strategy, fill.musan_chunk_seconds, rate)
elif strategy != "none":
    print("filling with clean views: no --musan_dir / --rir_dir (give those of the training run to augment as it does)")
collator = MultiViewCollator(
    num_views=2, crop_samples=crop, reference_samples=int(training.ssps_reference_seconds * rate),
    augment=augment, seed=training.seed, sampling_rate=rate,
)  # fmt: skip
collator.epoch = epoch
loader = DataLoader(
    dataset.select(order.tolist()), batch_size=fill.batch_size, collate_fn=collator,
    num_workers=training.dataloader_num_workers, drop_last=False,
)  # fmt: skip

# model, method adapter, empty stores
model = SSPSForPreTraining.from_pretrained(checkpoint).eval()
method = build_method(training, model.config)
ssps = SSPS(len(dataset), model.config.embedding_dim, method.positive_shape(), training.ssps_arguments(), device=accelerator.device)
model, loader = accelerator.prepare(model, loader)
unwrapped = accelerator.unwrap_model(model)

with torch.no_grad():
    for step, batch in enumerate(tqdm(loader, desc="filling SSPS stores", disable=not accelerator.is_main_process)):
        out = unwrapped(input_values=batch["input_values"])
        teacher = method.teacher_forward(unwrapped, batch, step)
        positives = method.positives(out, teacher)
        reference = F.normalize(method.reference_module(unwrapped)(input_values=batch["reference_values"]).embeddings, dim=-1)
        ssps.push(gather(batch["sample_index"]), gather(reference), gather_views(positives))

# write the ssps section of ssl_state.safetensors
if accelerator.is_main_process:
    tensors = {k: v for k, v in read_ssl_state(checkpoint).items() if not k.startswith("ssps.")}
    tensors.update({f"ssps.{k}": v for k, v in ssps.state_dict().items()})
    write_ssl_state(checkpoint, tensors, step=-1)
    path = checkpoint / SSL_STATE_NAME
    filled = int(ssps.table.filled.sum()) if hasattr(ssps, "table") else int(ssps.queue.filled.sum())
    print(f"filled {filled} of {len(dataset)} rows; wrote {path}")
accelerator.wait_for_everyone()

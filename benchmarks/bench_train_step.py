"""Training-step time per SSL framework through `SSLTrainer.compute_loss` + backward + optimiser
step (what one Trainer step does), ECAPA-TDNN C=512, batch 32, 2 s crops (DINO: 2 x 4 s global +
4 x 2 s local), with and without SSPS active (paper K/P = 25k scaled to the synthetic N).

    python benchmarks/bench_train_step.py [--batch 32] [--repeats 3] [--methods simclr dino]
    python benchmarks/bench_train_step.py --compare_forward   # joint vs per-view forward (no SSPS)

Prints a markdown table of median seconds per step; not run in CI. `--compare_forward`: the
BatchNorm batch composition of docs/differences.md row 1, one forward over all views
concatenated (`forward_per_view=false`) against one per view as the reference does (`true`).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from datasets import Dataset

from modeling_ssps import SSPSConfig, SSPSForPreTraining
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments
from ssps_trainers.methods import METHOD_CLASSES

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--methods", nargs="+", default=["simclr", "moco", "swav", "vicreg", "dino"])
parser.add_argument("--channels", type=int, default=512)
parser.add_argument("--compare_forward", action="store_true", help="Joint vs per-view forward, without SSPS.")
args = parser.parse_args()

HEADS = {name: method.head_type for name, method in METHOD_CLASSES.items()}  # the registry's
N = 4 * args.batch
rng = np.random.default_rng(0)
rows = {"audio": [(0.1 * rng.standard_normal(80000)).astype(np.float32) for _ in range(N)], "sample_index": list(range(N))}
c = args.channels


def step_time(method: str, ssps: bool, per_view: bool = False) -> float:
    dino = method == "dino"
    config = SSPSConfig(
        ecapa_channels=(c, c, c, c, 3 * c), head_type=HEADS[method],
        has_teacher=METHOD_CLASSES[method].needs_teacher, n_mels=80 if dino else 40,
        window="hann" if dino else "hamming", forward_per_view=per_view,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        training = SSLTrainingArguments(
            output_dir=folder, method=method, per_device_train_batch_size=args.batch, use_cpu=True,
            report_to=[], ssps=ssps, ssps_start_epoch=0, ssps_num_clusters=N // 4,
            ssps_queue_size=N // 4, learning_rate=0.2 if dino else 1e-3,
        )  # fmt: skip
        collator = MultiViewCollator(
            num_views=2, crop_samples=64000 if dino else 32000, local_views=4 if dino else 0,
            local_crop_samples=32000, reference_samples=64000 if ssps else None,
        )  # fmt: skip
        trainer = SSLTrainer(model=SSPSForPreTraining(config), args=training,
                             train_dataset=Dataset.from_dict(rows), data_collator=collator)  # fmt: skip
        trainer.create_optimizer()
        if trainer.ssps is not None:  # a filled store and a clustering, as in an active epoch
            batch = collator([{"audio": rows["audio"][i], "sample_index": i} for i in range(N)])
            embeddings = torch.nn.functional.normalize(torch.randn(N, 512), dim=1)
            positives = torch.randn(*trainer.method.positive_shape()[:1], N, trainer.method.positive_shape()[1])
            trainer.ssps.push(batch["sample_index"], embeddings, positives)
            trainer.ssps.refresh(0)
        model = trainer.model.train()
        batch = collator([{"audio": rows["audio"][i], "sample_index": i} for i in range(args.batch)])

        def one_step() -> None:
            loss = trainer.compute_loss(model, dict(batch))
            loss.backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()

        one_step()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            one_step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)


print(f"device=cpu torch={torch.__version__} threads={torch.get_num_threads()} "
      f"cpu={platform.processor() or platform.machine()} ECAPA C={c} batch={args.batch} "
      f"repeats={args.repeats} (median)")  # fmt: skip
if args.compare_forward:
    print("\n| method | s/step joint forward | s/step per-view forward | per-view / joint |\n|---|---|---|---|")
    for method in args.methods:
        joint, per_view = step_time(method, False, False), step_time(method, False, True)
        print(f"| {method} | {joint:.2f} | {per_view:.2f} | {per_view / joint:.2f} |", flush=True)
else:
    print("\n| method | s/step SSL | s/step SSL+SSPS | SSPS overhead |\n|---|---|---|---|")
    for method in args.methods:
        base, with_ssps = step_time(method, False), step_time(method, True)
        print(f"| {method} | {base:.2f} | {with_ssps:.2f} | {100 * (with_ssps - base) / base:+.1f}% |")

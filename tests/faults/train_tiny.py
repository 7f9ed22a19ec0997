"""A small SSPS training run that can die at a named point (launched by tests/test_faults.py).

    python train_tiny.py OUTPUT_DIR [FAULT]

The same command always: resumes from the newest complete checkpoint of OUTPUT_DIR, trains
MoCo + SSPS to step 12 (saves every 2 steps, keeps 2), and writes the final weights and the
logged losses. FAULT makes the process SIGKILL itself at one point of the run:

  step:N              inside the N-th optimiser step (between saves)
  trainer_files:N     N-th save: after the Trainer's files, before the SSL state
  before_marker:N     N-th save: everything written, before the completion marker
  before_rename:N     N-th save: marked complete in staging, before the rename into place
  zero_optimizer:N    N-th save: optimizer.pt half-written (0 bytes), then death
  rotation:N          N-th save: the new checkpoint is in place, while older ones are stripped
"""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import synthetic_voice, wav_bytes  # noqa: E402
from test_ssl_trainer import tiny_config  # noqa: E402

import ssps_trainers.ssl_trainer as ssl_trainer_module  # noqa: E402
from modeling_ssps import SSPSForPreTraining  # noqa: E402
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments  # noqa: E402
from ssps_trainers.checkpoints import latest_complete_checkpoint  # noqa: E402

output_dir = sys.argv[1]
fault, _, count = (sys.argv[2] if len(sys.argv) > 2 else "").partition(":")
calls = {"n": 0}


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(original, kill_before: bool = False, after=None):  # type: ignore[no-untyped-def]
    """Wrap `original`: on its `count`-th call, die before it runs, or run `after` then die."""

    def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == int(count):
            if kill_before:
                die()
            result = original(*args, **kwargs)
            if after is not None:
                after(*args)
            die()
            return result
        return original(*args, **kwargs)

    return wrapped


if fault == "step":
    SSLTrainer.compute_loss = on_call(SSLTrainer.compute_loss, kill_before=True)  # type: ignore[method-assign]
elif fault == "trainer_files":
    ssl_trainer_module.write_ssl_state = on_call(ssl_trainer_module.write_ssl_state, kill_before=True)
elif fault == "before_marker":
    ssl_trainer_module.mark_complete = on_call(ssl_trainer_module.mark_complete, kill_before=True)
elif fault == "before_rename":
    ssl_trainer_module.mark_complete = on_call(ssl_trainer_module.mark_complete)
elif fault == "zero_optimizer":
    def truncate(self, output_dir):  # type: ignore[no-untyped-def]
        Path(output_dir, "optimizer.pt").write_bytes(b"")

    SSLTrainer._save_optimizer_and_scheduler = on_call(SSLTrainer._save_optimizer_and_scheduler, after=truncate)  # type: ignore[method-assign]
elif fault == "rotation":
    ssl_trainer_module.strip_ssl_state = on_call(ssl_trainer_module.strip_ssl_state, kill_before=True)
elif fault:
    raise SystemExit(f"unknown fault {fault}")

rng = np.random.default_rng(0)
rows = {
    "audio": [wav_bytes(synthetic_voice(rng, int(16000 * rng.uniform(0.8, 1.5)), 100.0 + 30 * (i % 4))) for i in range(16)],
    "sample_index": list(range(16)),
}
args = SSLTrainingArguments(
    output_dir=output_dir, method="moco", per_device_train_batch_size=4, max_steps=12, num_train_epochs=3,
    logging_steps=1, save_steps=2, save_total_limit=2, report_to=[], use_cpu=True, disable_tqdm=True,
    moco_queue_size=16, ssps=True, ssps_start_epoch=1, ssps_num_clusters=3, ssps_queue_size=6,
    ssps_gate="agreement", dataloader_num_workers=0, seed=5,
)  # fmt: skip
collator = MultiViewCollator(num_views=2, crop_samples=8000, reference_samples=12000, seed=args.seed)
torch.manual_seed(args.seed)
trainer = SSLTrainer(model=SSPSForPreTraining(tiny_config("moco")), args=args, train_dataset=Dataset.from_dict(rows), data_collator=collator)
resume = latest_complete_checkpoint(output_dir)
trainer.train(resume_from_checkpoint=str(resume) if resume else None)
losses = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
weights = {k: v.double().sum().item() for k, v in trainer.model.state_dict().items()}
stores = {k: v.double().sum().item() for k, v in trainer.ssl_state_dict().items()}
Path(output_dir, "result.json").write_text(json.dumps({"losses": losses, "weights": weights, "stores": stores,
                                                       "resumed_from": str(resume) if resume else None}))  # fmt: skip
torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, Path(output_dir, "final_weights.pt"))

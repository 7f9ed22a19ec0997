"""Two-process SSLTrainer run with SSPS (launched by tests/test_distributed.py): after training,
the SSPS stores and clustering must be identical on every rank (every tensor, bitwise)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import synthetic_voice, wav_bytes  # noqa: E402

from modeling_ssps import SSPSConfig, SSPSForPreTraining  # noqa: E402
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments  # noqa: E402

method, output_dir, report = sys.argv[1], sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
rows = {
    "audio": [wav_bytes(synthetic_voice(rng, int(16000 * rng.uniform(0.8, 1.5)), 100.0 + 30 * (i % 4))) for i in range(16)],
    "sample_index": list(range(16)),
}
heads = {"simclr": "none", "moco": "none", "swav": "swav", "vicreg": "projector", "dino": "dino"}
config = SSPSConfig(
    encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1),
    embedding_dim=32, head_type=heads[method], has_teacher=method in ("moco", "dino"),
    projector_hidden_dim=32, projector_output_dim=16, dino_hidden_dim=32, dino_bottleneck_dim=8,
    dino_output_dim=64, swav_num_prototypes=10,
)  # fmt: skip
args = SSLTrainingArguments(
    output_dir=output_dir, method=method, per_device_train_batch_size=2, num_train_epochs=2,
    logging_steps=1, save_steps=100, report_to=[], use_cpu=True, disable_tqdm=True,
    moco_queue_size=16, swav_queue_size=8, dino_warmup_epochs=1, dino_schedule_epochs=2,
    ssps=True, ssps_start_epoch=1, ssps_num_clusters=3, ssps_queue_size=6,
    learning_rate=0.05 if method == "dino" else 1e-3, ddp_backend="gloo",
)  # fmt: skip
dino = method == "dino"
collator = MultiViewCollator(
    num_views=2, crop_samples=12000 if dino else 8000, local_views=2 if dino else 0,
    local_crop_samples=6000, reference_samples=12000, seed=args.seed,
)  # fmt: skip
torch.manual_seed(0)
trainer = SSLTrainer(model=SSPSForPreTraining(config), args=args, train_dataset=Dataset.from_dict(rows), data_collator=collator)
trainer.train()

def identical_on_every_rank(tensors: dict[str, torch.Tensor]) -> bool:
    """Every tensor, bitwise: all-gather each one and compare with torch.equal."""
    same = True
    for value in tensors.values():
        value = value.detach().contiguous()
        value = value.to(torch.uint8) if value.dtype == torch.bool else value  # gloo has no bool
        everything = [torch.empty_like(value) for _ in range(torch_dist.get_world_size())]
        torch_dist.all_gather(everything, value)
        same &= all(torch.equal(everything[0], e) for e in everything)
    return same


stores_identical = identical_on_every_rank(trainer.ssps.state_dict())
weights_identical = identical_on_every_rank(dict(trainer.model.named_parameters()))
if torch_dist.get_rank() == 0:
    Path(report).write_text(json.dumps({
        "world": torch_dist.get_world_size(),
        "stores_identical": stores_identical,
        "weights_identical": weights_identical,
        "filled": int(trainer.ssps.table.filled.sum()),
        "clustered_epoch": int(trainer.ssps.clustered_epoch),
        "steps": trainer.state.global_step,
        "coverage_logged": any("ssps/coverage" in h for h in trainer.state.log_history),
    }))
torch_dist.barrier()
torch_dist.destroy_process_group()
# gloo's background threads can abort at interpreter teardown ("terminate called without an
# active exception") after everything above succeeded: leave without running that teardown
sys.stdout.flush()
os._exit(0)

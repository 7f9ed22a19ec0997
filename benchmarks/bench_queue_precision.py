"""What a half-precision SSPS positive queue does to DINO's positives, and what it saves.

    python benchmarks/bench_queue_precision.py [--batch 128] [--output_dim 65536]

DINO queues the teacher logits (2 global crops x 65,536 prototypes per sample): at P = 25,000
that is 12.2 GiB in fp32. The logits are cosines in [-1, 1] (L2-normalised bottleneck, weight-
normalised last layer with g = 1), and the loss sharpens them with the teacher temperature
0.04, so a storage error d moves a softmax exponent by d / 0.04. This script stores real head
outputs in each dtype and reports the error where it matters: the teacher's target distribution
(KL to the fp32 one, largest probability change) and the DINO loss against random student
logits. Two teachers: a freshly initialised head (flat targets) and a confident one (each
sample's top prototype at cosine ~0.9, as a trained teacher has). No timing; CPU is fine.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from modeling_ssps import SSPSConfig, SSPSForPreTraining
from ssps_trainers.losses import dino_cross_entropy

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--batch", type=int, default=128)
parser.add_argument("--output_dim", type=int, default=65_536)
parser.add_argument("--queue_size", type=int, default=25_000)
args = parser.parse_args()
torch.manual_seed(0)

config = SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1),
                    embedding_dim=512, head_type="dino", has_teacher=True, dino_output_dim=args.output_dim)  # fmt: skip
head = SSPSForPreTraining(config).head.eval()
embeddings = torch.randn(2 * args.batch, 512)
with torch.no_grad():
    fresh = head(embeddings).reshape(2, args.batch, -1)
    # a confident teacher: each sample's bottleneck direction is (nearly) one prototype's
    z = F.normalize(head.mlp(embeddings), dim=-1)
    prototypes = F.normalize(head.last_layer, dim=1).clone()
    winners = torch.randperm(args.output_dim)[: 2 * args.batch]
    prototypes[winners] = F.normalize(z + 0.5 * torch.randn_like(z) / z.shape[1] ** 0.5, dim=1)
    confident = F.linear(z, prototypes).reshape(2, args.batch, -1)
center = 0.01 * torch.randn(args.output_dim)
student = torch.randn(6, args.batch, args.output_dim)  # 2 global + 4 local crops, logits
temperature = 0.04

print(f"DINO positives stored in the SSPS queue: 2 x {args.output_dim:,}-d per sample, P = {args.queue_size:,}\n")
print("| teacher | queue dtype | queue size | max abs logit error | mean KL(target fp32 || target) | max target change | DINO loss rel. change |")
print("|---|---|---|---|---|---|---|")
for name, logits in (("fresh head", fresh), ("confident", confident)):
    exact_targets = F.softmax((logits.double() - center.double()) / temperature, dim=-1)  # float64: KL of near-equal laws
    exact_loss = dino_cross_entropy(student, logits, center, 0.1, temperature)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        stored = logits.to(dtype).float()
        targets = F.softmax((stored.double() - center.double()) / temperature, dim=-1)
        kl = (exact_targets * (exact_targets.clamp_min(1e-300).log() - targets.clamp_min(1e-300).log())).sum(-1).mean()
        loss = dino_cross_entropy(student, stored, center, 0.1, temperature)
        size = args.queue_size * 2 * args.output_dim * torch.finfo(dtype).bits / 8 / 2**30
        print(f"| {name} (top cosine {float(logits.amax(-1).mean()):.2f}) | {str(dtype).replace('torch.', '')} | {size:.1f} GiB | "
              f"{float((stored - logits).abs().max()):.1e} | {float(kl):.1e} | {float((targets - exact_targets).abs().max()):.1e} | "
              f"{float((loss - exact_loss).abs() / exact_loss):.1e} |")  # fmt: skip

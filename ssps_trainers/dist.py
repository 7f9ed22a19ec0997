"""Distributed helpers, tiny and drawn. All are identities on one process.

gather_with_grad (SimCLR / VICReg negatives; adapted from lightly-ai/lightly `utils/dist.py`
`GatherLayer`, re-written):

    forward                         backward
    rank 0: x0 ─┐                   rank 0: g = all_reduce_sum(grad of [x0|x1]) → g[0:b]
                ├─ all_gather → [x0|x1] on every rank
    rank 1: x1 ─┘                   rank 1: same sum → g[b:2b]

Every rank's loss uses every slice, so the gradient of rank r's slice is the sum over ranks of
their gradients for that slice; DDP then averages over ranks, which equals one process on the
concatenated batch with the mean loss (tested with two processes in test_distributed.py). This
avoids the gradient scaling pitfalls of `torch.distributed.nn.functional.all_gather`
(mlfoundations/open_clip#616, huggingface/accelerate#1154).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as torch_dist


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.batch = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(torch_dist.get_world_size())]
        torch_dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch_dist.all_reduce(grad, op=torch_dist.ReduceOp.SUM)
        start = torch_dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate (b, ...) from every rank along dim 0, differentiably; identity on 1 process."""
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate (b, ...) from every rank along dim 0, without gradient (the stores' input)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    torch_dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def shuffle_permutation(total: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """A permutation of the global batch, drawn on rank 0 and broadcast (MoCo shuffle-BN):

        rank 0: perm = randperm(B) ──broadcast──▶ every rank
        rank r: keys of perm[r*b:(r+1)*b] (gathered inputs), un-permuted after the encoder
    """
    permutation = torch.randperm(total, generator=generator, device=generator.device).to(device)
    if is_distributed():
        torch_dist.broadcast(permutation, src=0)
    return permutation

"""Two-process check (launched by tests/test_distributed.py): gradients of the gathered
NT-Xent and VICReg equal one process on the concatenated batch."""

import json
import os
import sys

import torch
import torch.distributed as torch_dist

from ssps_trainers.dist import gather, gather_with_grad
from ssps_trainers.losses import nt_xent, vicreg

torch_dist.init_process_group("gloo")
rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
g = torch.Generator().manual_seed(0)
all_z1, all_z2 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
b = 8 // world
results = {}

for name in ("nt_xent", "vicreg"):
    z1 = all_z1[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    z2 = all_z2[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    g1, g2 = gather_with_grad(z1), gather_with_grad(z2)
    if name == "nt_xent":
        loss = nt_xent(z1, z2, g1, g2, rank * b, 0.1)
    else:
        loss = vicreg(g1, g2)[0]
    loss.backward()
    # DDP averages gradients over processes: do the same here
    distributed = torch.cat([gather(z1.grad), gather(z2.grad)]) / world

    s1, s2 = all_z1.clone().requires_grad_(True), all_z2.clone().requires_grad_(True)
    if name == "nt_xent":
        single = nt_xent(s1, s2, s1, s2, 0, 0.1)
    else:
        single = vicreg(s1, s2)[0]
    single.backward()
    # (VICReg: every rank computes the same global loss, so the all-reduced gradient is W times
    # the single-process one, and DDP's division by W restores it)
    expected = torch.cat([s1.grad, s2.grad])
    results[name] = float((distributed - expected).abs().max())

if rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"world": world, "max_abs_diff": results}, f)
torch_dist.destroy_process_group()
# gloo's background threads can abort at interpreter teardown ("terminate called without an
# active exception") after everything above succeeded: leave without running that teardown
sys.stdout.flush()
os._exit(0)

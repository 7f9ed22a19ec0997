"""Checkpoint averaging (SPEC §14): the tested model is the arithmetic mean of the last epoch
checkpoints. Every floating tensor is averaged (BatchNorm running statistics included); integer
tensors (`num_batches_tracked`) come from the last checkpoint; SSPS and queue state live in
`ssl_state.safetensors` and are never part of it."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

WEIGHTS_NAME = "model.safetensors"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """`checkpoint-<step>` folders holding weights, sorted by step."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    found = [p for p in found if (p / WEIGHTS_NAME).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def average_state_dicts(checkpoints: list[Path]) -> dict[str, torch.Tensor]:
    """Mean of the `model.safetensors` of `checkpoints` (the last one provides integer tensors)."""
    if not checkpoints:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for position, folder in enumerate(checkpoints):
        path = folder / WEIGHTS_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing")
        tensors = load_file(str(path))
        current = {k: tuple(v.shape) for k, v in tensors.items()}
        if position and current != shapes:
            raise ValueError(f"{path} has different tensors than {checkpoints[0] / WEIGHTS_NAME}")
        shapes = current
        for key, value in tensors.items():
            if value.dtype.is_floating_point:
                total[key] = total.get(key, torch.zeros_like(value, dtype=torch.float64)) + value.double()
            else:
                total.setdefault(key, value)
        last = tensors
    count = len(checkpoints)
    return {
        key: (value / count).to(last[key].dtype) if last[key].dtype.is_floating_point else last[key]
        for key, value in total.items()
    }

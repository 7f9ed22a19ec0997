"""Schedules as pure functions of the optimiser step (docs/method.md §11.2); they survive resume because
they never look at anything but the step."""

from __future__ import annotations

import math


def step_decay(step: int, steps_per_epoch: int, factor: float = 0.95, every_epochs: int = 5) -> float:
    """LR multiplier factor ** floor(epoch / every): x0.95 every 5 *absolute* epochs."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")
    return factor ** ((step // steps_per_epoch) // every_epochs)


def constant(step: int, value: float) -> float:
    return value


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """DINO teacher EMA momentum: base -> final along a half cosine over `total_steps`."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    progress = min(step, total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


def dino_paper_lr(
    step: int,
    steps_per_epoch: int,
    base_lr: float = 0.2,
    final_lr: float = 1e-5,
    warmup_epochs: int = 10,
    total_epochs: int = 100,
) -> float:
    """The paper-time DINO learning rate (docs/method.md §11.2): a linear warm-up from 0 over
    `warmup_epochs`, concatenated with a cosine from base_lr to final_lr defined over
    `total_epochs`, indexed by the global step (so the cosine never completes: the cosine array
    starts where the warm-up ends but has the full-length horizon)."""
    warmup_steps = warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    cosine_steps = total_epochs * steps_per_epoch
    i = step - warmup_steps
    if i >= cosine_steps:
        return final_lr
    return final_lr + 0.5 * (base_lr - final_lr) * (1 + math.cos(math.pi * i / cosine_steps))

"""Callbacks decide *when* (docs/architecture.md §3.4-5); the trainer and its objects decide *what*.

Callbacks receive the unwrapped model and no accelerator; the objects they drive (SSPS, the
SSL state, the collator) are handed to them at construction by `SSLTrainer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils import logging

from .ssps_diagnostics import MIN_SEED_AGREEMENT

logger = logging.get_logger(__name__)


def epoch_of(state: TrainerState, steps_per_epoch: int) -> int:
    """The integer epoch of the *next* optimiser step: global_step // steps_per_epoch."""
    return state.global_step // steps_per_epoch


class MomentumCallback(TrainerCallback):
    """EMA of the teacher after every optimiser step: t <- m t + (1 - m) s, with the
    step-indexed `momentum(step)` (MoCo 0.999 constant, DINO 0.996 -> 1 cosine)."""

    def __init__(self, momentum: Callable[[int], float]) -> None:
        self.momentum = momentum

    def on_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        model = kwargs["model"]
        teacher = model.teacher_parameters()
        if not teacher:
            return
        m = self.momentum(state.global_step)
        with torch.no_grad():
            torch._foreach_lerp_(teacher, [p.detach() for p in model.student_parameters()], 1.0 - m)


class FreezeCallback(TrainerCallback):
    """Drop the gradients of some parameters during the first epochs (DINO last layer, SwAV
    prototypes in epoch 0), before the optimiser step: Adam/SGD then leave them untouched."""

    def __init__(self, parameters: Callable[[nn.Module], list[nn.Parameter]], epochs: int, steps_per_epoch: int) -> None:
        self.parameters = parameters
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if epoch_of(state, self.steps_per_epoch) < self.epochs:
            for parameter in self.parameters(kwargs["model"]):
                parameter.grad = None


class PerParameterClipCallback(TrainerCallback):
    """DINO gradient clipping: each parameter's gradient norm is clipped to `max_norm`
    separately (facebookresearch/dino `clip_gradients`), batched with foreach kernels."""

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        grads = [p.grad for p in kwargs["model"].parameters() if p.grad is not None]
        if not grads:
            return
        norms = torch.stack(torch._foreach_norm(grads))
        scale = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, list(scale.unbind()))


class NormalizePrototypesCallback(TrainerCallback):
    """SwAV keeps its prototypes on the unit sphere: re-normalised after each optimiser step."""

    def on_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        prototypes = kwargs["model"].prototypes
        if prototypes is not None:
            with torch.no_grad():
                prototypes.weight.copy_(torch.nn.functional.normalize(prototypes.weight, dim=1))


class SSPSEpochCallback(TrainerCallback):
    """k-means at the start of every active epoch, once: a resumed run that already clustered
    this epoch (`clustered_epoch` restored from the checkpoint) does not cluster again.

    Checked before the first step of a `train()` call and at every epoch boundary of the
    global step, so virtual epochs of a streaming run (one Trainer "epoch") are covered too;
    the one host read of `clustered_epoch` happens only there."""

    def __init__(self, ssps: Any, steps_per_epoch: int, log: Callable[[dict[str, float]], None]) -> None:
        self.ssps = ssps
        self.steps_per_epoch = steps_per_epoch
        self.log = log
        self.checked_since_start = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.checked_since_start = False

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.checked_since_start and state.global_step % self.steps_per_epoch != 0:
            return
        self.checked_since_start = True
        epoch = epoch_of(state, self.steps_per_epoch)
        if self.ssps.active(epoch) and int(self.ssps.clustered_epoch) != epoch:
            stats = self.ssps.refresh(epoch)
            agreement = stats.get("ssps/seed_agreement", float("nan"))
            if agreement < MIN_SEED_AGREEMENT and self.ssps.args.gate == "none":
                logger.warning(
                    f"SSPS epoch {epoch}: only {agreement:.0%} of pseudo-positive pairs agree across two "
                    f"k-means starts (< {MIN_SEED_AGREEMENT:.0%}): the bootstrap is weak and the paper's SSPS "
                    "is likely to make the encoder worse; check it with scripts/diagnose_ssps.py and, if it "
                    "agrees, continue without SSPS (docs/ssps_robustness.md)"
                )
            self.log(stats)


class CollatorEpochCallback(TrainerCallback):
    """Tells the collator the epoch, so crops are a pure function of (seed, epoch, sample).

    Set at each Trainer epoch start, before DataLoader workers are (re)started for it. (A
    streaming run has one Trainer epoch: its collator draws fresh crops per call instead.)"""

    def __init__(self, collator: Any, steps_per_epoch: int) -> None:
        self.collator = collator
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if getattr(self.collator, "epoch", None) is not None:
            self.collator.epoch = epoch_of(state, self.steps_per_epoch)


class StopAtEpochCallback(TrainerCallback):
    """Stop and save after `stop_epoch` epochs while schedules keep their full horizon."""

    def __init__(self, stop_epoch: int, steps_per_epoch: int) -> None:
        self.stop_step = stop_epoch * steps_per_epoch

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step >= self.stop_step:
            control.should_training_stop = True
            control.should_save = True



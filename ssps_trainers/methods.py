"""One small adapter per SSL framework (docs/method.md §8, §11.2): which tensors are the positives, which
module computes the SSPS reference, what the teacher computes, the loss call and the
auxiliary-state update. The trainer calls them in the order of docs/architecture.md §3; no adapter knows
whether SSPS substituted anything: it receives `positives` (original or substituted).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainerCallback

from modeling_ssps import SSPSConfig, SSPSForPreTraining, SSPSModel, SSPSPreTrainingOutput

from . import dist, seeds
from .callbacks import FreezeCallback, MomentumCallback, NormalizePrototypesCallback, PerParameterClipCallback
from .losses import (
    dino_cross_entropy,
    moco_infonce,
    nt_xent,
    sinkhorn_knopp,
    swav_swapped_prediction,
    vicreg,
)
from .memory import Center, FeatureQueue
from .schedules import constant, cosine_momentum, dino_paper_lr, step_decay
from .training_args import SSLTrainingArguments


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put exactly `module` in eval mode and restore the mode of each of its submodules."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.train(training)


def gather_views(x: torch.Tensor) -> torch.Tensor:
    """(n, b, D) -> (n, B, D) over processes, without gradient."""
    return dist.gather(x.transpose(0, 1).contiguous()).transpose(0, 1)


class SSLMethod:
    """Base adapter. `positives()` returns (n_pos, b, D_pos) detached-or-not tensors that SSPS
    may replace; `loss()` is pure given its inputs; `update_state()` runs after the loss."""

    name = "base"
    # what the method needs beyond its loss, read by the trainer, the commands and the tests
    needs_teacher = False  # SSPSConfig.has_teacher
    head_type = "none"  # SSPSConfig.head_type
    augment_strategy = "reverb+noise"  # WaveformAugment strategy of its views
    global_crop_seconds: float | None = None  # None: the views are --crop_seconds long
    local_views = False  # extra local crops (DINO: --dino_local_views of --crop_seconds)

    @staticmethod
    def frontend_defaults(encoder_type: str) -> dict[str, object]:
        """The front-end settings of the paper's recipe for this method and encoder."""
        return {"n_mels": 40, "window": "hamming"}

    def callbacks(self, steps_per_epoch: int) -> list[TrainerCallback]:
        """Method-specific schedules around the step (momentum, freezing, clipping)."""
        return []

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """Adam at the peak LR (docs/method.md §11.2)."""
        return torch.optim.Adam(params, lr=self.args.learning_rate, weight_decay=self.args.weight_decay)

    def lr_factor(self, steps_per_epoch: int) -> Callable[[int], float]:
        """Multiplier of the peak LR at a global step: the step decay of the Adam recipes."""
        a = self.args
        return lambda step: step_decay(step, steps_per_epoch, a.lr_decay_factor, a.lr_decay_epochs)

    def __init__(self, args: SSLTrainingArguments, config: SSPSConfig) -> None:
        self.args = args
        self.config = config
        if config.head_type != self.head_type:
            raise ValueError(
                f"method {self.name!r} needs SSPSConfig.head_type={self.head_type!r}, got "
                f"{config.head_type!r}"
            )
        if config.has_teacher != self.needs_teacher:
            raise ValueError(
                f"method {self.name!r} needs SSPSConfig.has_teacher={self.needs_teacher}, "
                f"got {config.has_teacher}"
            )

    def positive_shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def make_state(self) -> nn.ModuleDict:
        return nn.ModuleDict()

    def reference_module(self, model: SSPSForPreTraining) -> SSPSModel:
        return model.student

    def teacher_forward(
        self, model: SSPSForPreTraining, inputs: dict[str, torch.Tensor], step: int
    ) -> torch.Tensor | None:
        """Momentum-branch outputs under no_grad (MoCo keys, DINO teacher logits), or None."""
        return None

    def positives(self, out: SSPSPreTrainingOutput, teacher: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def loss(
        self,
        model: SSPSForPreTraining,
        out: SSPSPreTrainingOutput,
        positives: torch.Tensor,
        state: nn.ModuleDict,
        epoch: int,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def update_state(
        self, state: nn.ModuleDict, out: SSPSPreTrainingOutput, positives: torch.Tensor, epoch: int
    ) -> None:
        return None


class SimCLR(SSLMethod):
    """NT-Xent on encoder outputs; positive Z2 (1, 512), the encoder output of view 2."""

    name = "simclr"

    def positive_shape(self) -> tuple[int, int]:
        return (1, self.config.embedding_dim)

    def positives(self, out: SSPSPreTrainingOutput, teacher: torch.Tensor | None) -> torch.Tensor:
        return out.embeddings[1:2]

    def loss(self, model, out, positives, state, epoch):  # type: ignore[no-untyped-def]
        z1, z2 = out.embeddings[0], positives[0]
        offset = dist.rank() * z1.shape[0]
        all_z1, all_z2 = dist.gather_with_grad(z1), dist.gather_with_grad(z2)
        return nt_xent(z1, z2, all_z1, all_z2, offset, self.args.simclr_temperature), {}


class MoCo(SSLMethod):
    """Symmetric MoCo v2+: queries from the student, keys from the teacher (the momentum "key encoder") with
    shuffle-BN, two negative queues; SSPS replaces both keys and the replaced keys are enqueued."""

    name = "moco"
    needs_teacher = True

    def callbacks(self, steps_per_epoch: int) -> list[TrainerCallback]:
        momentum = self.args.moco_momentum
        return [MomentumCallback(lambda step: constant(step, momentum))]

    def positive_shape(self) -> tuple[int, int]:
        return (2, self.config.embedding_dim)

    def make_state(self) -> nn.ModuleDict:
        queue = FeatureQueue(self.args.moco_queue_size, 2, self.config.embedding_dim)
        generator = torch.Generator().manual_seed(self.args.seed)
        with torch.no_grad():  # random unit negatives until real keys arrive (as MoCo does)
            queue.values.copy_(F.normalize(torch.randn(queue.values.shape, generator=generator), dim=-1))
        return nn.ModuleDict({"moco": queue})

    @torch.no_grad()
    def teacher_forward(self, model, inputs, step):  # type: ignore[no-untyped-def]
        assert model.teacher is not None
        views = inputs["input_values"]  # (b, 2, T)
        b = views.shape[0]
        if dist.is_distributed():
            # shuffle-BN: encode a random permutation of the global batch, then un-permute
            everything = dist.gather(views)
            generator = torch.Generator(device=views.device).manual_seed(seeds.shuffle_bn(self.args.seed, step))
            permutation = dist.shuffle_permutation(everything.shape[0], views.device, generator)
            mine = everything[permutation[dist.rank() * b : (dist.rank() + 1) * b]]
            keys = self._encode(model, mine)  # (2, b, D)
            all_keys = gather_views(keys)
            restored = torch.empty_like(all_keys)
            restored[:, permutation] = all_keys
            return restored[:, dist.rank() * b : (dist.rank() + 1) * b]
        return self._encode(model, views)

    @staticmethod
    def _encode(model: SSPSForPreTraining, views: torch.Tensor) -> torch.Tensor:
        assert model.teacher is not None
        if model.config.forward_per_view:  # keys per view, as the queries (reference batches)
            return torch.stack([F.normalize(model.teacher(input_values=views[:, v]).embeddings, dim=-1) for v in range(views.shape[1])])
        flat = views.transpose(0, 1).reshape(-1, views.shape[-1])
        keys = F.normalize(model.teacher(input_values=flat).embeddings, dim=-1)
        return keys.reshape(views.shape[1], views.shape[0], -1)

    def positives(self, out, teacher):  # type: ignore[no-untyped-def]
        assert teacher is not None
        return teacher

    def loss(self, model, out, positives, state, epoch):  # type: ignore[no-untyped-def]
        q1, q2 = F.normalize(out.embeddings[0], dim=-1), F.normalize(out.embeddings[1], dim=-1)
        k1, k2 = positives[0].detach(), positives[1].detach()
        queue = state["moco"].values  # (2, Q, D): keys of view 1, keys of view 2
        t = self.args.moco_temperature
        loss = 0.5 * (moco_infonce(q1, k2, queue[1], t) + moco_infonce(q2, k1, queue[0], t))
        return loss, {}

    def update_state(self, state, out, positives, epoch):  # type: ignore[no-untyped-def]
        state["moco"].push(gather_views(positives.detach()))  # the substituted keys


class SwAV(SSLMethod):
    """SwAV: normalised projections, prototypes, Sinkhorn codes over the global batch (plus the
    feature queue once full and from `swav_queue_start_epoch`); positive Z2 (1, 512)."""

    name = "swav"
    head_type = "swav"

    def callbacks(self, steps_per_epoch: int) -> list[TrainerCallback]:
        frozen = FreezeCallback(lambda m: [m.prototypes.weight], self.args.swav_freeze_prototypes_epochs, steps_per_epoch)
        return [frozen, NormalizePrototypesCallback()]

    def positive_shape(self) -> tuple[int, int]:
        return (1, self.config.projector_output_dim)

    def make_state(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {"swav": FeatureQueue(self.args.swav_queue_size, 2, self.config.projector_output_dim)}
        )

    def positives(self, out, teacher):  # type: ignore[no-untyped-def]
        assert out.projections is not None
        return out.projections[1:2]

    def loss(self, model, out, positives, state, epoch):  # type: ignore[no-untyped-def]
        assert out.projections is not None and model.prototypes is not None
        z1, z2 = out.projections[0], positives[0]
        b = z1.shape[0]
        # one prototype call: DDP's gradient hook must fire once per parameter and step
        scores1, scores2 = model.prototypes(torch.cat([z1, z2])).split(b)  # (b, K) each
        queue: FeatureQueue = state["swav"]
        use_queue = epoch >= self.args.swav_queue_start_epoch and bool(queue.count == queue.capacity)
        codes = []
        with torch.no_grad():
            for view, scores in enumerate((scores1, scores2)):
                everything = dist.gather(scores.detach())  # (B, K): Sinkhorn on the global batch
                if use_queue:
                    everything = torch.cat([queue.values[view] @ model.prototypes.weight.T, everything])
                q = sinkhorn_knopp(everything, self.args.swav_epsilon, self.args.swav_sinkhorn_iterations)
                start = q.shape[0] - dist.world_size() * b + dist.rank() * b  # skip queue rows
                local = q[start : start + b]
                codes.append(local)
        loss = swav_swapped_prediction(scores1, scores2, codes[0], codes[1], self.args.swav_temperature)
        return loss, {}

    def update_state(self, state, out, positives, epoch):  # type: ignore[no-untyped-def]
        assert out.projections is not None
        state["swav"].push(gather_views(out.projections[:2].detach()))  # the original Z1, Z2


class VICReg(SSLMethod):
    """VICReg on projector outputs over the global batch; positive Z2 (1, 512)."""

    name = "vicreg"
    head_type = "projector"

    def positive_shape(self) -> tuple[int, int]:
        return (1, self.config.projector_output_dim)

    def positives(self, out, teacher):  # type: ignore[no-untyped-def]
        assert out.projections is not None
        return out.projections[1:2]

    def loss(self, model, out, positives, state, epoch):  # type: ignore[no-untyped-def]
        assert out.projections is not None
        z1 = dist.gather_with_grad(out.projections[0])
        z2 = dist.gather_with_grad(positives[0])
        a = self.args
        total, terms = vicreg(
            z1, z2, a.vicreg_invariance_weight, a.vicreg_variance_weight,
            a.vicreg_covariance_weight, a.vicreg_eps,
        )  # fmt: skip
        return total, {f"vicreg/{k}": v.detach() for k, v in terms.items()}


class DINO(SSLMethod):
    """DINO: the teacher (encoder + head, EMA) sees the 2 global crops, the student all 6;
    positives are the teacher logits T1, T2 (2, K); the centre is updated with what the loss used."""

    name = "dino"
    needs_teacher = True
    head_type = "dino"
    augment_strategy = "all"  # one of none, reverb, noise, both per view
    global_crop_seconds = 4.0
    local_views = True

    @staticmethod
    def frontend_defaults(encoder_type: str) -> dict[str, object]:
        if encoder_type == "ecapa_tdnn":
            return {"n_mels": 80, "window": "hann"}  # DINO-ECAPA of the paper
        return {"n_mels": 40, "window": "hamming"}

    def callbacks(self, steps_per_epoch: int) -> list[TrainerCallback]:
        a = self.args
        total = a.dino_schedule_epochs * steps_per_epoch
        out: list[TrainerCallback] = [MomentumCallback(lambda step: cosine_momentum(step, total, a.dino_momentum_base))]
        if a.dino_clip_grad > 0:
            out.append(PerParameterClipCallback(a.dino_clip_grad))
        out.append(FreezeCallback(lambda m: [m.head.last_layer], a.dino_freeze_last_layer_epochs, steps_per_epoch))
        return out

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """SGD, momentum 0.9, weight decay on weights only (docs/method.md §11.2)."""
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": self.args.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        return torch.optim.SGD(groups, lr=self.args.learning_rate, momentum=0.9)

    def lr_factor(self, steps_per_epoch: int) -> Callable[[int], float]:
        """The paper-time warm-up + cosine, over dino_schedule_epochs."""
        a = self.args
        return lambda step: dino_paper_lr(step, steps_per_epoch, a.learning_rate, a.dino_final_lr,
                                          a.dino_warmup_epochs, a.dino_schedule_epochs) / a.learning_rate  # fmt: skip

    def positive_shape(self) -> tuple[int, int]:
        return (2, self.config.dino_output_dim)

    def make_state(self) -> nn.ModuleDict:
        return nn.ModuleDict({"dino": Center(self.config.dino_output_dim, self.args.dino_center_momentum)})

    def reference_module(self, model: SSPSForPreTraining) -> SSPSModel:
        assert model.teacher is not None
        return model.teacher  # docs/method.md §3: the DINO reference comes from the teacher encoder

    @torch.no_grad()
    def teacher_forward(self, model, inputs, step):  # type: ignore[no-untyped-def]
        assert model.teacher is not None and model.teacher_head is not None
        views = inputs["input_values"]  # (b, 2, T) global crops
        flat = views.transpose(0, 1).reshape(-1, views.shape[-1])
        logits = model.teacher_head(model.teacher(input_values=flat).embeddings)
        return logits.reshape(views.shape[1], views.shape[0], -1)  # (2, b, K)

    def positives(self, out, teacher):  # type: ignore[no-untyped-def]
        assert teacher is not None
        return teacher

    def loss(self, model, out, positives, state, epoch):  # type: ignore[no-untyped-def]
        assert out.projections is not None
        a = self.args
        loss = dino_cross_entropy(
            out.projections, positives, state["dino"].center,
            a.dino_student_temperature, a.dino_teacher_temperature,
        )  # fmt: skip
        return loss, {}

    def update_state(self, state, out, positives, epoch):  # type: ignore[no-untyped-def]
        state["dino"].update(gather_views(positives.detach()))  # the substituted T'


METHOD_CLASSES: dict[str, type[SSLMethod]] = {
    m.name: m for m in (SimCLR, MoCo, SwAV, VICReg, DINO)
}


def build_method(args: SSLTrainingArguments, config: SSPSConfig) -> SSLMethod:
    return METHOD_CLASSES[args.method](args, config)

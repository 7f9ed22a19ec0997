"""`SSLTrainingArguments`: how we train (docs/method.md §11). What the weights are lives in `SSPSConfig`.

Defaults are the paper's values for SSPS (docs/method.md §11.2, the bold column), not the SSL study's
best values. `remove_unused_columns=False` (batch keys are not `forward` arguments) and
`dataloader_drop_last=True` (fixed global batch, docs/method.md §13) are our defaults.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass

from transformers import TrainingArguments

from .ssps_arguments import SSPSArguments

_OPTIMISER = "the optimiser is the recipe's (Adam; DINO: SGD, momentum 0.9): set --learning_rate and --weight_decay"
_SCHEDULE = (
    "the LR schedule is the recipe's: step decay (--lr_decay_factor, --lr_decay_epochs) or, for DINO, warm-up + cosine "
    "(--dino_warmup_epochs, --dino_final_lr, --dino_schedule_epochs)"
)
# TrainingArguments fields that SSLTrainer overrides: refused when changed, never silently ignored
OVERRIDDEN = {
    "optim": _OPTIMISER, "optim_args": _OPTIMISER, "adam_beta1": _OPTIMISER, "adam_beta2": _OPTIMISER,
    "adam_epsilon": _OPTIMISER, "lr_scheduler_type": _SCHEDULE, "lr_scheduler_kwargs": _SCHEDULE,
    "warmup_steps": _SCHEDULE, "warmup_ratio": _SCHEDULE,
}  # fmt: skip


def _ssps_fields() -> type:
    """`ssps_<name>` for every `SSPSArguments` setting but `seed`: its type, default and help,
    defined once there (docs/method.md §11.1)."""
    hints = typing.get_type_hints(SSPSArguments)
    return make_dataclass("SSPSFields", [(f"ssps_{f.name}", hints[f.name], field(default=f.default, metadata=dict(f.metadata)))
                                         for f in fields(SSPSArguments) if f.name != "seed"])  # fmt: skip


SSPSFields = _ssps_fields()


@dataclass
class SSLTrainingArguments(TrainingArguments, SSPSFields):  # type: ignore[misc,valid-type]
    method: str = field(
        default="simclr",
        metadata={"help": "SSL framework: simclr, moco (MoCo v2+, symmetric), swav, vicreg or dino."},
    )
    seed: int = field(default=1717, metadata={"help": "Random seed (1717 in the paper)."})
    learning_rate: float = field(
        default=1e-3, metadata={"help": "Peak LR: Adam 1e-3 (SimCLR/MoCo/SwAV/VICReg); DINO SGD uses 0.2."}
    )
    weight_decay: float = field(
        default=0.0, metadata={"help": "Adam: 0 (paper). DINO: 5e-5, never on 1-D parameters."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep False: batch keys (sample_index, ...) are not forward() arguments."}
    )
    dataloader_drop_last: bool = field(
        default=True, metadata={"help": "Keep True: queues and gathers need a fixed global batch."}
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Global gradient clipping; 0 = none (paper). DINO clips per parameter (dino_clip_grad)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={"help": "Keep False: every trainable parameter gets a gradient each step (SwAV prototypes are used in the loss, outside forward)."},
    )
    lr_decay_factor: float = field(
        default=0.95, metadata={"help": "Adam recipes: multiply the LR by this every lr_decay_epochs absolute epochs."}
    )
    lr_decay_epochs: int = field(default=5, metadata={"help": "Epoch period of the step decay (5 in the paper)."})
    stop_at_epoch: int | None = field(
        default=None,
        metadata={"help": "Stop (and save) after this many epochs while schedules keep the num_train_epochs horizon (DINO: 80 of 100)."},
    )
    num_train_samples: int | None = field(
        default=None,
        metadata={"help": "Training-set size when it cannot be read from the dataset (streaming): sizes epochs and the SSPS table."},
    )
    # SimCLR / MoCo
    simclr_temperature: float = field(default=0.03, metadata={"help": "NT-Xent temperature (0.03)."})
    moco_temperature: float = field(default=0.03, metadata={"help": "MoCo InfoNCE temperature (0.03)."})
    moco_queue_size: int = field(default=65536, metadata={"help": "Negatives per MoCo queue (two queues; 65,536)."})
    moco_momentum: float = field(default=0.999, metadata={"help": "Key-encoder EMA momentum, constant (0.999)."})
    # SwAV
    swav_temperature: float = field(default=0.1, metadata={"help": "SwAV softmax temperature (0.1)."})
    swav_epsilon: float = field(default=0.05, metadata={"help": "Sinkhorn-Knopp entropic regularisation (0.05)."})
    swav_sinkhorn_iterations: int = field(default=3, metadata={"help": "Sinkhorn-Knopp iterations (3)."})
    swav_queue_size: int = field(default=3840, metadata={"help": "SwAV feature queue length (3,840)."})
    swav_queue_start_epoch: int = field(default=15, metadata={"help": "Epoch from which the SwAV queue is used (15)."})
    swav_freeze_prototypes_epochs: int = field(default=1, metadata={"help": "Prototypes frozen for this many epochs (1)."})
    # VICReg
    vicreg_invariance_weight: float = field(default=1.0, metadata={"help": "Invariance weight (1.0)."})
    vicreg_variance_weight: float = field(default=1.0, metadata={"help": "Variance weight (1.0)."})
    vicreg_covariance_weight: float = field(default=0.04, metadata={"help": "Covariance weight (0.04 with SSPS; 0.1 in the SSL study)."})
    vicreg_eps: float = field(default=1e-4, metadata={"help": "Std epsilon (1e-4)."})
    # DINO
    dino_student_temperature: float = field(default=0.1, metadata={"help": "Student temperature (0.1)."})
    dino_teacher_temperature: float = field(default=0.04, metadata={"help": "Teacher temperature, constant (0.04)."})
    dino_center_momentum: float = field(default=0.9, metadata={"help": "Centre EMA momentum (0.9)."})
    dino_momentum_base: float = field(default=0.996, metadata={"help": "Teacher EMA momentum at step 0; cosine to 1 (0.996)."})
    dino_clip_grad: float = field(default=3.0, metadata={"help": "Per-parameter gradient-norm clip (3.0); 0 disables."})
    dino_freeze_last_layer_epochs: int = field(default=1, metadata={"help": "Last head layer frozen for this many epochs (1)."})
    dino_warmup_epochs: int = field(default=10, metadata={"help": "Linear LR warm-up epochs (10)."})
    dino_final_lr: float = field(default=1e-5, metadata={"help": "Final LR of the cosine (1e-5)."})
    dino_schedule_epochs: int = field(default=100, metadata={"help": "Horizon of the cosine LR and momentum schedules (100)."})
    dino_local_views: int = field(default=4, metadata={"help": "Local 2 s crops per sample (4)."})
    # SSPS (docs/method.md §11.1)
    ssps: bool = field(default=False, metadata={"help": "Enable Self-Supervised Positive Sampling."})
    ssps_reference_seconds: float = field(default=4.0, metadata={"help": "Clean reference crop length (4 s)."})
    ssps_reference_train_mode: bool = field(default=False, metadata={"help": "Reference forward with the reference module in train mode, at every step (also without --ssps, e.g. a base run): as the reference implementation runs its DINO teacher, whose BatchNorm statistics then also see the clean 4 s crops. False: eval mode, only while SSPS collects (docs/differences.md row 2). DINO paper recipes: true."})

    def __post_init__(self) -> None:
        for name, reason in OVERRIDDEN.items():
            if name in TrainingArguments.__dataclass_fields__ and getattr(self, name) != TrainingArguments.__dataclass_fields__[name].default:
                raise ValueError(f"--{name} is not used by SSL training ({reason}); got {getattr(self, name)!r}")
        from .methods import METHOD_CLASSES  # the registry (methods.py imports this module)

        if self.method not in METHOD_CLASSES:
            raise ValueError(f"SSLTrainingArguments.method must be one of {tuple(METHOD_CLASSES)}, got {self.method!r}")
        if self.stop_at_epoch is not None and self.stop_at_epoch < 1:
            raise ValueError(f"stop_at_epoch must be >= 1, got {self.stop_at_epoch!r}")
        if self.gradient_accumulation_steps != 1:
            raise ValueError(
                "gradient_accumulation_steps must be 1: queues, SSPS pushes and EMA updates are "
                f"per optimiser step; got {self.gradient_accumulation_steps!r}"
            )
        super().__post_init__()
        if self.ssps:
            self.ssps_arguments()  # validate eagerly

    def ssps_arguments(self) -> SSPSArguments:
        """The frozen SSPS settings projected from the `ssps_*` fields."""
        settings = {f.name: getattr(self, f"ssps_{f.name}") for f in fields(SSPSArguments) if f.name != "seed"}
        return SSPSArguments(**settings, seed=self.seed)

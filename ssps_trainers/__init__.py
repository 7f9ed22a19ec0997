"""Train-time half of the SSPS toolkit: SSL losses, memories, SSPS, the Trainer subclass.

The public names load lazily, so `import ssps_trainers.synthesis` (or `ssps_trainers.ssps`) does not
import the Trainer stack (transformers' Trainer, accelerate, datasets).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "MultiViewCollator": ".data",
    "SSLTrainer": ".ssl_trainer",
    "SSPS": ".ssps",
    "SSPSArguments": ".ssps_arguments",
    "SSLTrainingArguments": ".training_args",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ssps_trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name], __name__), name)

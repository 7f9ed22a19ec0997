"""Train-time half of the SSPS toolkit: SSL losses, memories, SSPS, the Trainer subclass."""

from .data import MultiViewCollator
from .ssl_trainer import SSLTrainer
from .ssps import SSPS, SSPSArguments
from .training_args import SSLTrainingArguments

__all__ = ["SSPS", "MultiViewCollator", "SSLTrainer", "SSLTrainingArguments", "SSPSArguments"]

"""SSPS hyper-parameters: `SSPSArguments` and the choices of its fields (docs/method.md §11.1).

A frozen dataclass beside the SSPS core (not in `training_args.py`, so the core never imports
transformers); `SSLTrainingArguments` projects its `ssps_*` fields onto it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .kmeans import Precision

Sampling = Literal["kmeans-repr", "knn", "kmeans-centroid"]
Weighting = Literal["uniform", "exp"]
KMeansMode = Literal["main", "replicated"]
QueueDtype = Literal["float32", "float16", "bfloat16"]
Gate = Literal["none", "agreement"]


def _setting(default: Any, help: str) -> Any:
    """A field with its command-line help: `SSLTrainingArguments` exposes it as `--ssps_<name>`."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SSPSArguments:
    """SSPS hyper-parameters (docs/method.md §11.1); defaults are the paper's headline column.

    The one definition of the SSPS settings: `SSLTrainingArguments` gets an `ssps_<name>` field
    (same type, default and help) for each of them except `seed`, and projects them back here with
    `ssps_arguments()`.
    """

    start_epoch: int = _setting(100, "S: first active epoch (100; DINO 80); collection starts at S-1.")
    sampling: Sampling = _setting("kmeans-repr", "kmeans-repr (paper), kmeans-centroid or knn (SSPS-NN).")
    num_clusters: int = _setting(25_000, "K, k-means clusters (25,000 for 5,994 speakers).")
    kmeans_iters: int = _setting(10, "k-means iterations (10).")
    queue_size: int = _setting(25_000, "P, positive-queue capacity (= K; knn: 1,000,000).")
    neighbour_clusters: int = _setting(1, "M: 0 = own cluster, >= 1 = the M nearest other clusters (1).")
    knn_k: int | None = _setting(None, "SSPS-NN neighbours (knn only; 1-100).")
    weighting: Weighting = _setting("uniform", "uniform (paper) or exp over neighbour ranks.")
    exp_lambda: float = _setting(0.7, "lambda of the exp weighting (0.7).")
    kmeans_mode: KMeansMode = _setting("main", "main (rank 0 + broadcast) or replicated.")
    log_nmi: bool = _setting(False, "Log k-means NMI vs speaker/video labels each epoch.")
    queue_dtype: QueueDtype = _setting(
        "float32", "Positive-queue storage: float32 (paper) or float16/bfloat16 (saves memory; a deviation)."
    )
    kmeans_precision: Precision = _setting(
        "auto",
        "k-means E-step: auto (certified where bf16 matmuls are native, else float32; same assignments), float32 "
        "(plain), certified (bf16 screen with a proven bound, fp32 scores for undecided rows: fp32 assignments), "
        "bfloat16/float16 (approximate).",
    )
    gate: Gate = _setting(
        "none",
        "none (paper: every drawn pseudo-positive is used) or agreement (robust: only pairs that a second, "
        "independently started k-means also relates; see docs/ssps_robustness.md).",
    )
    seed: int = 1717  # the run's --seed (not an ssps_* option)

    def __post_init__(self) -> None:
        for name, kind in (
            ("sampling", Sampling),
            ("weighting", Weighting),
            ("kmeans_mode", KMeansMode),
            ("queue_dtype", QueueDtype),
            ("kmeans_precision", Precision),
            ("gate", Gate),
        ):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(
                    f"SSPSArguments.{name} must be one of {get_args(kind)}, got "
                    f"{getattr(self, name)!r}"
                )
        if self.start_epoch < 0:
            raise ValueError(f"SSPSArguments.start_epoch must be >= 0, got {self.start_epoch!r}")
        if self.queue_size < 1:
            raise ValueError(f"SSPSArguments.queue_size must be >= 1, got {self.queue_size!r}")
        if not self.exp_lambda > 0:
            raise ValueError(f"SSPSArguments.exp_lambda must be > 0, got {self.exp_lambda!r}")
        if self.sampling == "knn":
            if self.knn_k is None or self.knn_k < 1:
                raise ValueError(
                    f"SSPSArguments.knn_k must be >= 1 with sampling='knn', got {self.knn_k!r}"
                )
            if self.knn_k > self.queue_size:
                raise ValueError(
                    f"SSPSArguments.knn_k ({self.knn_k!r}) cannot exceed queue_size "
                    f"({self.queue_size!r})"
                )
        else:
            if self.knn_k is not None:
                raise ValueError(
                    f"SSPSArguments.knn_k is only used with sampling='knn'; got knn_k="
                    f"{self.knn_k!r} with sampling={self.sampling!r}"
                )
            if self.num_clusters < 1:
                raise ValueError(
                    f"SSPSArguments.num_clusters must be >= 1, got {self.num_clusters!r}"
                )
            if self.kmeans_iters < 0:
                raise ValueError(
                    f"SSPSArguments.kmeans_iters must be >= 0, got {self.kmeans_iters!r}"
                )
            if not 0 <= self.neighbour_clusters < self.num_clusters:
                raise ValueError(
                    "SSPSArguments.neighbour_clusters must be in [0, num_clusters - 1], got "
                    f"{self.neighbour_clusters!r} with num_clusters={self.num_clusters!r}"
                )
        if self.gate != "none" and self.sampling != "kmeans-repr":
            raise ValueError(
                f"SSPSArguments.gate={self.gate!r} checks a queued partner against a second "
                f"clustering: it needs sampling='kmeans-repr', got {self.sampling!r}"
            )
        if self.log_nmi and self.sampling == "knn":
            raise ValueError("SSPSArguments.log_nmi needs a k-means sampling mode, not 'knn'")

    @property
    def num_candidates(self) -> int:
        """Length of each anchor's candidate list: clusters (k-means) or neighbours (knn)."""
        if self.sampling == "knn":
            assert self.knn_k is not None
            return self.knn_k
        return max(self.neighbour_clusters, 1)

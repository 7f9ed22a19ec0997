"""Configuration of SSPS speaker encoders (front-end, encoder, pooling, SSL heads, threshold).

What the weights *are* lives here; how they are trained lives in `ssps_trainers.SSLTrainingArguments`.
Values follow Lepage & Dehak, "Self-Supervised Frameworks for Speaker Verification via
Bootstrapped Positive Sampling" (IEEE/ACM TASLP 2025, arXiv 2501.17772), docs/method.md §11.2 and §12.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# The rate of every released recipe and encoder: the default of `SSPSConfig.sampling_rate`, of the
# feature extractor and of the front-end. Code that has a model reads `config.sampling_rate`.
SAMPLING_RATE = 16000

ENCODER_TYPES = ("ecapa_tdnn", "fast_resnet34")
WINDOWS = ("hamming", "hann")
HEAD_TYPES = ("none", "projector", "swav", "dino")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"SSPSConfig.{name} must be > 0, got {value!r}")


@strict
class SSPSConfig(PreTrainedConfig):
    r"""
    Configuration of an SSPS speaker encoder and its self-supervised heads.

    Front-end (docs/method.md §12): log-mel filterbanks computed inside the model in plain torch
    (STFT `n_fft` 512, 25 ms window, 10 ms hop, `center=True` reflect padding, power 2,
    HTK mel scale 0-8 kHz, `log(mel + log_offset)`, per-utterance instance norm over time).
    40 bins with a Hamming window for every paper recipe except DINO-ECAPA (80 bins, Hann).

    Encoders:
    - `ecapa_tdnn`: ECAPA-TDNN (Desplanques et al., Interspeech 2020). `ecapa_channels` are the
      output channels of block 0, the three SE-Res2Net blocks and the aggregation layer;
      `(1024, 1024, 1024, 1024, 3072)` gives about 22.5M parameters, `(512, 512, 512, 512, 1536)`
      is the small variant.
    - `fast_resnet34`: the "Fast ResNet-34" (ResNetSE34L of clovaai/voxceleb_trainer), about 1.4M
      parameters.

    Heads (used by `SSPSForPreTraining` only, never by the published `SSPSModel`):
    `head_type="none"` (SimCLR, MoCo: the loss sees the encoder output), `"projector"` (VICReg:
    512→2048→2048→512 MLP), `"swav"` (the same MLP, L2-normalised, plus `swav_num_prototypes`
    prototypes), `"dino"` (512→2048→2048→256 MLP with GELU, L2 norm, weight-normalised
    256→`dino_output_dim` layer). `has_teacher` adds the teacher: a frozen EMA copy of the
    student (for MoCo, the "key encoder"; for DINO, encoder and head). Configs saved before the
    rename carry `momentum_branch`, which still loads as `has_teacher`.

    `forward_per_view` (training only) gives BatchNorm the reference implementation's batches:
    one encoder (and head) forward per view, so each view is its own BatchNorm batch (MoCo keys
    too); DINO one forward per crop group (globals, locals), the head included. False: all views
    of a step in one batch.

    `threshold` is the cosine-score decision threshold used by the verification pipeline;
    `threshold_source` says where it was measured (operating point and trial list), and is
    `None` for a value never measured (the pipeline then warns).

    Example:

    ```python
    >>> from modeling_ssps import SSPSConfig, SSPSModel
    >>> config = SSPSConfig(encoder_type="ecapa_tdnn", ecapa_channels=(512, 512, 512, 512, 1536))
    >>> model = SSPSModel(config)
    ```
    """

    model_type = "ssps"

    # front-end
    sampling_rate: int = SAMPLING_RATE
    n_mels: int = 40
    window: str = "hamming"
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    f_min: float = 0.0
    f_max: float = 8000.0
    log_offset: float = 1e-6
    instance_norm_eps: float = 1e-5
    # encoder
    encoder_type: str = "ecapa_tdnn"
    embedding_dim: int = 512
    ecapa_channels: list[int] | tuple[int, ...] = (1024, 1024, 1024, 1024, 3072)
    ecapa_kernel_sizes: list[int] | tuple[int, ...] = (5, 3, 3, 3, 1)
    ecapa_dilations: list[int] | tuple[int, ...] = (1, 2, 3, 4, 1)
    ecapa_res2net_scale: int = 8
    ecapa_se_channels: int = 128
    ecapa_attention_channels: int = 128
    resnet_channels: list[int] | tuple[int, ...] = (16, 32, 64, 128)
    resnet_layers: list[int] | tuple[int, ...] = (3, 4, 6, 3)
    resnet_se_reduction: int = 8
    # self-supervised heads (SSPSForPreTraining only)
    head_type: str = "none"
    projector_hidden_dim: int = 2048
    projector_output_dim: int = 512
    dino_hidden_dim: int = 2048
    dino_bottleneck_dim: int = 256
    dino_output_dim: int = 65536
    swav_num_prototypes: int = 3000
    has_teacher: bool = False
    forward_per_view: bool = False
    # verification
    threshold: float = 0.5
    threshold_source: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if "momentum_branch" in kwargs:  # the name of `has_teacher` in configs saved before it
            self.has_teacher = bool(kwargs.pop("momentum_branch"))
        if self.encoder_type not in ENCODER_TYPES:
            raise ValueError(
                f"SSPSConfig.encoder_type must be one of {ENCODER_TYPES}, got {self.encoder_type!r}"
            )
        if self.window not in WINDOWS:
            raise ValueError(f"SSPSConfig.window must be one of {WINDOWS}, got {self.window!r}")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(
                f"SSPSConfig.head_type must be one of {HEAD_TYPES}, got {self.head_type!r}"
            )
        for name in (
            "sampling_rate", "n_mels", "win_length", "hop_length", "n_fft", "log_offset",
            "instance_norm_eps", "embedding_dim", "ecapa_res2net_scale", "ecapa_se_channels",
            "ecapa_attention_channels", "resnet_se_reduction", "projector_hidden_dim",
            "projector_output_dim", "dino_hidden_dim", "dino_bottleneck_dim", "dino_output_dim",
            "swav_num_prototypes",
        ):  # fmt: skip
            _positive(name, getattr(self, name))
        if self.win_length > self.n_fft:
            raise ValueError(
                f"SSPSConfig.win_length ({self.win_length!r}) must be <= n_fft ({self.n_fft!r})"
            )
        if not 0.0 <= self.f_min < self.f_max <= self.sampling_rate / 2:
            raise ValueError(
                "SSPSConfig needs 0 <= f_min < f_max <= sampling_rate / 2, got "
                f"f_min={self.f_min!r}, f_max={self.f_max!r}, sampling_rate={self.sampling_rate!r}"
            )
        self.ecapa_channels = tuple(self.ecapa_channels)
        self.ecapa_kernel_sizes = tuple(self.ecapa_kernel_sizes)
        self.ecapa_dilations = tuple(self.ecapa_dilations)
        self.resnet_channels = tuple(self.resnet_channels)
        self.resnet_layers = tuple(self.resnet_layers)
        for name in ("ecapa_channels", "ecapa_kernel_sizes", "ecapa_dilations"):
            value = getattr(self, name)
            if len(value) != 5 or any(v <= 0 for v in value):
                raise ValueError(
                    f"SSPSConfig.{name} needs 5 positive integers (block 0, three SE-Res2Net "
                    f"blocks, aggregation), got {value!r}"
                )
        if len(set(self.ecapa_channels[0:4])) != 1:
            raise ValueError(
                "SSPSConfig.ecapa_channels[0:4] (block 0 and the SE-Res2Net blocks, joined by "
                f"identity residuals) must be equal, got {self.ecapa_channels!r}"
            )
        if self.ecapa_channels[1] % self.ecapa_res2net_scale != 0:
            raise ValueError(
                f"SSPSConfig.ecapa_channels={self.ecapa_channels!r}: the block width "
                f"{self.ecapa_channels[1]} must be divisible by ecapa_res2net_scale "
                f"({self.ecapa_res2net_scale!r})"
            )
        if any(k % 2 == 0 for k in self.ecapa_kernel_sizes):
            raise ValueError(
                f"SSPSConfig.ecapa_kernel_sizes must be odd ('same' padding), got "
                f"{self.ecapa_kernel_sizes!r}"
            )
        for name in ("resnet_channels", "resnet_layers"):
            value = getattr(self, name)
            if len(value) != 4 or any(v <= 0 for v in value):
                raise ValueError(f"SSPSConfig.{name} needs 4 positive integers, got {value!r}")
        if self.encoder_type == "fast_resnet34" and self.n_mels % 8 != 0:
            raise ValueError(
                "SSPSConfig.n_mels must be divisible by 8 for fast_resnet34 (three frequency "
                f"downsamplings by 2), got {self.n_mels!r}"
            )
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(
                f"SSPSConfig.threshold is a cosine score in [-1, 1], got {self.threshold!r}"
            )
        super().__post_init__(**kwargs)


__all__ = ["SSPSConfig"]

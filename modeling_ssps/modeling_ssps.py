"""SSPS speaker encoders, in pipeline order: log-mel front-end -> ECAPA-TDNN | Fast ResNet-34
-> masked attentive pooling -> speaker embeddings.

Use-time code only (docs/architecture.md §1): it needs torch, numpy and transformers and nothing else, so it
runs as Hub remote code. Everything that handles padding is *length aware*: a padded batch
gives the embeddings of one-by-one inference (up to float re-association), because

- the STFT and every "same" convolution of ECAPA-TDNN reflect-pad each utterance at its own
  end (`reflect_pad`), exactly as unpadded inference does;
- Fast ResNet-34 zero-pads, so padded frames are zeroed before every convolution;
- instance normalisation, squeeze-excitation means and attentive pooling ignore padded frames.

Architectures adapted (re-written) from:
- ECAPA-TDNN: Desplanques et al., Interspeech 2020; layout as in speechbrain
  (`speechbrain/lobes/models/ECAPA_TDNN.py`) and theolepage/sslsv, numbers from docs/method.md §12.
- Fast ResNet-34 (ResNetSE34L): Chung et al., "In defence of metric learning", Interspeech 2020;
  clovaai/voxceleb_trainer `models/ResNetSE34L.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.audio_utils import mel_filter_bank
from transformers.utils import ModelOutput

from .configuration_ssps import SAMPLING_RATE, SSPSConfig

# ----------------------------------------------------------------------------------------------
# Length helpers
# ----------------------------------------------------------------------------------------------


def lengths_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Valid samples per row of a right-padded `attention_mask` (batch, samples) -> (batch,)."""
    return attention_mask.to(torch.long).sum(dim=-1)


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Boolean (batch, max_length) mask, True on the first `lengths[b]` positions of row b."""
    positions = torch.arange(max_length, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def reflect_pad(x: torch.Tensor, lengths: torch.Tensor | None, pad: int) -> torch.Tensor:
    """Reflect-pad the last axis of `x` (batch, channels, time) by `pad` on both sides.

    With `lengths`, each row is reflected at its *own* end (position lengths[b] - 1), which is
    what unpadded inference on that row would see; values past lengths[b] + pad are junk that no
    valid output reads. Needs lengths > pad (the feature extractor enforces a minimum duration).
    """
    if pad == 0:
        return x
    if lengths is None:
        return F.pad(x, (pad, pad), mode="reflect")
    time = x.shape[-1]
    source = torch.arange(-pad, time + pad, device=x.device)  # (time + 2 pad,)
    last = (lengths - 1)[:, None]  # (batch, 1)
    index = torch.where(source[None, :] > last, 2 * last - source[None, :], source.abs()[None, :])
    index = index.clamp(0, time - 1)  # (batch, time + 2 pad)
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last axis of (batch, channels, time), ignoring frames where mask is 0."""
    if mask is None:
        return x.mean(dim=-1, keepdim=True)
    weights = mask.to(x.dtype)[:, None, :]  # (batch, 1, time)
    return (x * weights).sum(dim=-1, keepdim=True) / weights.sum(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------------------------
# Front-end
# ----------------------------------------------------------------------------------------------


class LogMelFrontend(nn.Module):
    """Waveform (batch, samples) -> instance-normalised log-mel features (batch, mels, frames).

    STFT with an `n_fft`-point FFT of a `win_length` window centred in the frame, `center=True`
    reflect padding, power 2, HTK mel filters without normalisation, `log(mel + log_offset)`,
    then per-utterance, per-bin zero mean and unit (biased) variance over the valid frames
    (docs/method.md §12). fp32 and no gradient: it has no parameters, and the mel matrix and window are
    non-persistent buffers rebuilt from the config.
    """

    window: torch.Tensor
    mel_filters: torch.Tensor

    def __init__(
        self,
        sampling_rate: int = SAMPLING_RATE,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        window: str = "hamming",
        f_min: float = 0.0,
        f_max: float = 8000.0,
        log_offset: float = 1e-6,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.log_offset = log_offset
        self.eps = eps
        self.window_name = window
        # True: the STFT is a strided convolution with a real DFT basis (no complex tensors), for
        # ONNX export; numerically the same power spectrum (tested against torch.stft)
        self.export_friendly = False
        self.filter_spec = (n_fft // 2 + 1, n_mels, f_min, f_max, sampling_rate)
        window_tensor, mel_filters = self.compute_buffers()
        self.register_buffer("window", window_tensor, persistent=False)
        self.register_buffer("mel_filters", mel_filters, persistent=False)

    def compute_buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The analysis window (win_length,) and mel matrix (mels, freqs), from the settings.

        Also called by `_init_weights`: `from_pretrained` builds modules on the meta device and
        non-persistent buffers are not in the checkpoint, so they are recomputed there.
        """
        # periodic windows, as torch.stft / torchaudio.transforms.Spectrogram use them
        window_fn = torch.hamming_window if self.window_name == "hamming" else torch.hann_window
        num_freqs, n_mels, f_min, f_max, sampling_rate = self.filter_spec
        filters = mel_filter_bank(
            num_frequency_bins=num_freqs,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=f_max,
            sampling_rate=sampling_rate,
            norm=None,
            mel_scale="htk",
        )  # (freqs, mels)
        mel_filters = torch.from_numpy(filters).to(torch.float32).T.contiguous()  # (mels, freqs)
        return window_fn(self.win_length), mel_filters

    def power_spectrum(self, padded: torch.Tensor) -> torch.Tensor:
        """|STFT|^2 of already padded waveforms (batch, samples) -> (batch, freqs, frames)."""
        if not self.export_friendly:
            spectrum = torch.stft(
                padded,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=False,
                return_complex=True,
            )
            return spectrum.real.square() + spectrum.imag.square()
        # the window sits centred in the n_fft frame, as torch.stft places it
        offset = (self.n_fft - self.win_length) // 2
        window = F.pad(self.window, (offset, self.n_fft - self.win_length - offset))  # (n_fft,)
        n = torch.arange(self.n_fft, dtype=torch.float32, device=padded.device)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float32, device=padded.device)
        angle = 2 * math.pi * k[:, None] * n[None, :] / self.n_fft  # (freqs, n_fft)
        basis = torch.cat([torch.cos(angle), torch.sin(angle)]) * window  # (2 freqs, n_fft)
        parts = F.conv1d(padded[:, None, :], basis[:, None, :], stride=self.hop_length)  # (batch, 2 freqs, frames)
        real, imaginary = parts.chunk(2, dim=1)
        return real.square() + imaginary.square()

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames of a `center=True` STFT: 1 + samples // hop."""
        return 1 + torch.div(num_samples, self.hop_length, rounding_mode="floor")

    @torch.no_grad()
    def forward(
        self, input_values: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        with torch.autocast(device_type=input_values.device.type, enabled=False):
            waveform = input_values.to(torch.float32)
            padded = reflect_pad(waveform[:, None, :], lengths, self.n_fft // 2)[:, 0, :]
            power = self.power_spectrum(padded)  # (batch, freqs, frames)
            mel = torch.matmul(self.mel_filters, power)  # (batch, mels, frames)
            features = torch.log(mel + self.log_offset)
            if lengths is None:
                mean = features.mean(dim=-1, keepdim=True)
                var = (features - mean).square().mean(dim=-1, keepdim=True)
                return (features - mean) / torch.sqrt(var + self.eps)
            mask = length_mask(self.num_frames(lengths), features.shape[-1])
            mean = masked_mean(features, mask)
            var = masked_mean((features - mean).square(), mask)
            # padded frames are set to 0 so that zero-padding convolutions see what they would
            # see without padding
            return (features - mean) / torch.sqrt(var + self.eps) * mask[:, None, :]


# ----------------------------------------------------------------------------------------------
# ECAPA-TDNN
# ----------------------------------------------------------------------------------------------


class TDNNBlock(nn.Module):
    """Conv1d with reflect 'same' padding -> ReLU -> BatchNorm (docs/method.md §12's "TDNN block")."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(F.relu(self.conv(reflect_pad(x, lengths, self.pad))))


class SqueezeExcitation1d(nn.Module):
    """Time mean (valid frames only) -> C->se ReLU -> se->C sigmoid -> channel gates."""

    def __init__(self, channels: int, se_channels: int) -> None:
        super().__init__()
        self.down = nn.Conv1d(channels, se_channels, 1)
        self.up = nn.Conv1d(se_channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        gates = torch.sigmoid(self.up(F.relu(self.down(masked_mean(x, mask)))))  # (batch, C, 1)
        return x * gates


class Res2NetBlock(nn.Module):
    """Res2Net with `scale` chunks: chunk 0 passes through; chunk i >= 1 (plus the previous
    branch's output for i >= 2) goes through its own dilated TDNN block."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        width = channels // scale
        self.branches = nn.ModuleList(
            TDNNBlock(width, width, kernel_size, dilation) for _ in range(scale - 1)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        chunks = torch.chunk(x, self.scale, dim=1)
        outputs = [chunks[0]]
        previous: torch.Tensor | None = None
        for chunk, branch in zip(chunks[1:], self.branches, strict=True):
            previous = branch(chunk if previous is None else chunk + previous, lengths)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SERes2NetBlock(nn.Module):
    """TDNN k=1 -> Res2Net -> TDNN k=1 -> squeeze-excitation, plus an identity residual."""

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, scale: int, se_channels: int
    ) -> None:
        super().__init__()
        self.tdnn_in = TDNNBlock(channels, channels, 1)
        self.res2net = Res2NetBlock(channels, kernel_size, dilation, scale)
        self.tdnn_out = TDNNBlock(channels, channels, 1)
        self.se = SqueezeExcitation1d(channels, se_channels)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        y = self.tdnn_out(self.res2net(self.tdnn_in(x), lengths))
        return self.se(y, mask) + x


def weighted_statistics(
    x: torch.Tensor, weights: torch.Tensor, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and std over time of (batch, C, time) with weights summing to 1 over time."""
    mean = (x * weights).sum(dim=-1)
    var = (weights * (x - mean[..., None]).square()).sum(dim=-1)
    return mean, torch.sqrt(var.clamp(min=eps))


class AttentiveStatisticsPooling(nn.Module):
    """Channel- and context-dependent attentive statistics pooling (ECAPA-TDNN, with global
    context): [x, mean_t(x), std_t(x)] -> TDNN -> tanh -> Conv1d -> softmax over the valid
    frames -> weighted mean and std. (batch, C, time) -> (batch, 2C)."""

    def __init__(self, channels: int, attention_channels: int) -> None:
        super().__init__()
        self.tdnn = TDNNBlock(3 * channels, attention_channels, 1)
        self.attention = nn.Conv1d(attention_channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        time = x.shape[-1]
        if mask is None:
            uniform = torch.full_like(x[:, :1, :], 1.0 / time)
        else:
            valid = mask.to(x.dtype)[:, None, :]
            uniform = valid / valid.sum(dim=-1, keepdim=True)  # (batch, 1, time)
        mean, std = weighted_statistics(x, uniform)
        context = torch.cat(
            [x, mean[..., None].expand(-1, -1, time), std[..., None].expand(-1, -1, time)], dim=1
        )  # (batch, 3C, time)
        scores = self.attention(torch.tanh(self.tdnn(context)))  # (batch, C, time)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        mean, std = weighted_statistics(x, torch.softmax(scores, dim=-1))
        return torch.cat([mean, std], dim=1)


class ECAPATDNN(nn.Module):
    """ECAPA-TDNN on (batch, mels, frames) features -> (batch, embedding_dim), docs/method.md §12.

    channels [C, C, C, C, 3C], kernels [5, 3, 3, 3, 1], dilations [1, 2, 3, 4, 1]; block 0 is a
    TDNN block, blocks 1-3 are SE-Res2Net blocks, their outputs are concatenated and aggregated,
    then attentive statistics pooling -> BN -> Conv1d k=1 -> embedding (no final BN).
    """

    def __init__(
        self,
        n_mels: int,
        channels: tuple[int, ...] = (1024, 1024, 1024, 1024, 3072),
        kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1),
        dilations: tuple[int, ...] = (1, 2, 3, 4, 1),
        scale: int = 8,
        se_channels: int = 128,
        attention_channels: int = 128,
        embedding_dim: int = 512,
    ) -> None:
        super().__init__()
        self.block0 = TDNNBlock(n_mels, channels[0], kernel_sizes[0], dilations[0])
        self.blocks = nn.ModuleList(
            SERes2NetBlock(channels[i], kernel_sizes[i], dilations[i], scale, se_channels)
            for i in (1, 2, 3)
        )
        self.aggregation = TDNNBlock(3 * channels[3], channels[4], kernel_sizes[4], dilations[4])
        self.pooling = AttentiveStatisticsPooling(channels[4], attention_channels)
        self.pooling_norm = nn.BatchNorm1d(2 * channels[4])
        self.projection = nn.Conv1d(2 * channels[4], embedding_dim, 1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        mask = None if lengths is None else length_mask(lengths, features.shape[-1])
        x = self.block0(features, lengths)  # (batch, C, frames)
        outputs = []
        for block in self.blocks:
            x = block(x, lengths, mask)
            outputs.append(x)
        x = self.aggregation(torch.cat(outputs, dim=1), lengths)  # (batch, 3C, frames)
        pooled = self.pooling_norm(self.pooling(x, mask))  # (batch, 6C)
        return self.projection(pooled[..., None])[..., 0]  # (batch, embedding_dim)


# ----------------------------------------------------------------------------------------------
# Fast ResNet-34
# ----------------------------------------------------------------------------------------------


def _time_mask(lengths: torch.Tensor | None, time: int) -> torch.Tensor | None:
    """(batch, 1, 1, time) float mask for 4-D feature maps, or None without padding."""
    if lengths is None:
        return None
    return length_mask(lengths, time).to(torch.float32)[:, None, None, :]


class SqueezeExcitation2d(nn.Module):
    """Mean over frequency and valid time -> Linear C->C/r ReLU -> Linear -> sigmoid gates."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.down = nn.Linear(channels, max(channels // reduction, 1))
        self.up = nn.Linear(max(channels // reduction, 1), channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            pooled = x.mean(dim=(2, 3))
        else:
            pooled = (x * mask).sum(dim=(2, 3)) / (mask.sum(dim=(2, 3)) * x.shape[2])
        gates = torch.sigmoid(self.up(F.relu(self.down(pooled))))  # (batch, C)
        return x * gates[:, :, None, None]


class SEBasicBlock(nn.Module):
    """conv3x3 -> ReLU -> BN -> conv3x3 -> BN -> SE -> + shortcut -> ReLU (ResNetSE34L order)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, reduction: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.se = SqueezeExcitation2d(out_channels, reduction)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = _time_mask(lengths, x.shape[-1])
        if mask is not None:
            x = x * mask  # zero padding must see zeros past each row's end
        y = self.norm1(F.relu(self.conv1(x)))
        if lengths is not None:
            # k=3, padding 1: L -> (L - 1) // stride + 1
            lengths = torch.div(lengths - 1, self.stride, rounding_mode="floor") + 1
        mask = _time_mask(lengths, y.shape[-1])
        if mask is not None:
            y = y * mask
        y = self.se(self.norm2(self.conv2(y)), mask)
        return F.relu(y + self.shortcut(x)), lengths


class FastResNet34(nn.Module):
    """Fast ResNet-34 (ResNetSE34L) on (batch, mels, frames) -> (batch, embedding_dim).

    Stem conv 7x7 stride (2, 1) -> BN -> ReLU; stages [3, 4, 6, 3] of SE basic blocks with
    [16, 32, 64, 128] channels and strides [1, 2, 2, 1]; mean over frequency; self-attentive
    pooling softmax_t(tanh(W x) . a) over the valid frames; Linear -> embedding (no final BN).
    """

    def __init__(
        self,
        n_mels: int = 40,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        layers: tuple[int, ...] = (3, 4, 6, 3),
        se_reduction: int = 8,
        embedding_dim: int = 512,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels[0], 7, stride=(2, 1), padding=3)
        self.stem_norm = nn.BatchNorm2d(channels[0])
        blocks = []
        in_channels = channels[0]
        for out_channels, num_blocks, stride in zip(channels, layers, (1, 2, 2, 1), strict=True):
            for i in range(num_blocks):
                blocks.append(
                    SEBasicBlock(in_channels, out_channels, stride if i == 0 else 1, se_reduction)
                )
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.attention_proj = nn.Linear(channels[-1], channels[-1])
        self.attention_vector = nn.Parameter(torch.empty(channels[-1], 1))
        self.projection = nn.Linear(channels[-1], embedding_dim)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        x = F.relu(self.stem_norm(self.stem(features[:, None])))  # (batch, C, mels/2, frames)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        x = x.mean(dim=2).transpose(1, 2)  # (batch, frames', C)
        scores = torch.tanh(self.attention_proj(x)) @ self.attention_vector  # (batch, frames', 1)
        if lengths is not None:
            valid = length_mask(lengths, x.shape[1])[:, :, None]
            scores = scores.masked_fill(~valid, float("-inf"))
        pooled = (x * torch.softmax(scores, dim=1)).sum(dim=1)  # (batch, C)
        return self.projection(pooled)


# ----------------------------------------------------------------------------------------------
# Self-supervised heads (docs/method.md §11.2)
# ----------------------------------------------------------------------------------------------


class ProjectionHead(nn.Module):
    """MLP `input -> hidden -> hidden -> output` (Linear-BN-activation twice, then Linear),
    optionally L2-normalised: the SwAV (ReLU, normalised) and VICReg (ReLU) projectors."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        activation: str = "relu",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        act: type[nn.Module] = nn.GELU if activation == "gelu" else nn.ReLU
        self.layers = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            act(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            act(),
            nn.Linear(hidden_dim, output_dim),
        )
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.layers(x)
        return F.normalize(z, dim=-1) if self.normalize else z


class DINOHead(nn.Module):
    """DINO head: GELU MLP to a bottleneck, L2 norm, then a weight-normalised linear layer
    with its gain fixed to 1 (Caron et al., ICCV 2021; facebookresearch/dino `DINOHead`).

    The last layer is kept as its direction parameter `last_layer` (output, bottleneck); each
    row is L2-normalised in `forward`, which is weight normalisation with g = 1.
    """

    def __init__(self, input_dim: int, hidden_dim: int, bottleneck_dim: int, output_dim: int):
        super().__init__()
        self.mlp = ProjectionHead(input_dim, hidden_dim, bottleneck_dim, activation="gelu")
        self.last_layer = nn.Parameter(torch.empty(output_dim, bottleneck_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)  # (batch, bottleneck)
        return F.linear(z, F.normalize(self.last_layer, dim=1))  # (batch, output) logits


class SwAVPrototypes(nn.Module):
    """SwAV prototypes (K, D): scores are z . c_k for unit z; the trainer re-normalises the
    prototypes after every optimiser step (Caron et al., NeurIPS 2020)."""

    def __init__(self, dim: int, num_prototypes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_prototypes, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weight.T


def build_head(config: SSPSConfig) -> nn.Module | None:
    """The projector of `config.head_type` (None: the loss sees the encoder output)."""
    if config.head_type == "none":
        return None
    if config.head_type == "dino":
        return DINOHead(
            config.embedding_dim,
            config.dino_hidden_dim,
            config.dino_bottleneck_dim,
            config.dino_output_dim,
        )
    return ProjectionHead(
        config.embedding_dim,
        config.projector_hidden_dim,
        config.projector_output_dim,
        normalize=config.head_type == "swav",
    )


# ----------------------------------------------------------------------------------------------
# Hugging Face models
# ----------------------------------------------------------------------------------------------


@dataclass
class SSPSModelOutput(ModelOutput):
    """Output of `SSPSModel`.

    Args:
        embeddings (`torch.FloatTensor` of shape `(batch_size, embedding_dim)`):
            Speaker embeddings, *not* normalised. For verification, L2-normalise them and
            compare with a cosine score against `config.threshold`.
    """

    embeddings: torch.FloatTensor | None = None


# Weight names of checkpoints saved before the student was renamed (`ssps.` -> `student.`):
# `from_pretrained` maps them, `save_pretrained` always writes today's names.
LEGACY_KEY_MAPPING = {r"^ssps\.": "student."}


def rename_legacy_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` with `LEGACY_KEY_MAPPING` applied to its names (today's names unchanged)."""
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in LEGACY_KEY_MAPPING.items():
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


class SSPSPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue shared by SSPS models."""

    config_class = SSPSConfig
    base_model_prefix = "student"
    main_input_name = "input_values"
    input_modalities = "audio"
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """As `PreTrainedModel.from_pretrained`; checkpoints with the old weight names load too
        (`LEGACY_KEY_MAPPING`, unless the caller passes its own `key_mapping`)."""
        kwargs.setdefault("key_mapping", LEGACY_KEY_MAPPING)
        return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """As `PreTrainedModel.save_pretrained`, always with today's weight names (a model
        loaded from an old checkpoint is not saved back under the old names)."""
        kwargs.setdefault("save_original_format", False)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers.initialization functions skip tensors already loaded from a checkpoint,
        # so from_pretrained never re-initialises trained weights.
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, FastResNet34):
            init.xavier_normal_(module.attention_vector)
        elif isinstance(module, DINOHead):
            init.trunc_normal_(module.last_layer, std=0.02)
        elif isinstance(module, SwAVPrototypes):
            init.xavier_uniform_(module.weight)
        elif isinstance(module, LogMelFrontend):
            window, mel_filters = module.compute_buffers()
            init.copy_(module.window, window)
            init.copy_(module.mel_filters, mel_filters)


def build_encoder(config: SSPSConfig) -> nn.Module:
    """The encoder named by `config.encoder_type`, built from explicit numbers."""
    if config.encoder_type == "ecapa_tdnn":
        return ECAPATDNN(
            n_mels=config.n_mels,
            channels=tuple(config.ecapa_channels),
            kernel_sizes=tuple(config.ecapa_kernel_sizes),
            dilations=tuple(config.ecapa_dilations),
            scale=config.ecapa_res2net_scale,
            se_channels=config.ecapa_se_channels,
            attention_channels=config.ecapa_attention_channels,
            embedding_dim=config.embedding_dim,
        )
    if config.encoder_type == "fast_resnet34":
        return FastResNet34(
            n_mels=config.n_mels,
            channels=tuple(config.resnet_channels),
            layers=tuple(config.resnet_layers),
            se_reduction=config.resnet_se_reduction,
            embedding_dim=config.embedding_dim,
        )
    raise ValueError(f"unknown encoder_type {config.encoder_type!r}")


class SSPSModel(SSPSPreTrainedModel):
    """The published speaker encoder: 16 kHz waveforms -> speaker embeddings.

    Loading it from an `SSPSForPreTraining` checkpoint takes the student encoder (prefix
    `student.`) and skips the heads and the teacher.

    Example:

    ```python
    >>> import torch
    >>> from modeling_ssps import SSPSConfig, SSPSModel
    >>> model = SSPSModel(SSPSConfig(encoder_type="fast_resnet34")).eval()
    >>> out = model(input_values=torch.randn(2, 32000))
    >>> out.embeddings.shape
    torch.Size([2, 512])
    ```
    """

    _keys_to_ignore_on_load_unexpected = [r"^teacher\.", r"^teacher_head\.", r"^head\.", r"^prototypes\."]

    def __init__(self, config: SSPSConfig) -> None:
        super().__init__(config)
        self.frontend = LogMelFrontend(
            sampling_rate=config.sampling_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            window=config.window,
            f_min=config.f_min,
            f_max=config.f_max,
            log_offset=config.log_offset,
            eps=config.instance_norm_eps,
        )
        self.encoder = build_encoder(config)
        self.post_init()

    def forward(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> SSPSModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_samples)`):
            Mono 16 kHz waveforms, right-padded (see `SSPSFeatureExtractor`).
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_samples)`, *optional*):
            1 on real samples, 0 on padding. Without it every sample is treated as real.
        """
        if input_values.ndim != 2:
            raise ValueError(
                "SSPSModel expects input_values of shape (batch, samples), got shape "
                f"{tuple(input_values.shape)}"
            )
        if input_values.shape[-1] <= self.config.n_fft // 2:
            raise ValueError(
                f"SSPSModel needs more than {self.config.n_fft // 2} samples per waveform, got "
                f"{input_values.shape[-1]}"
            )
        lengths = None if attention_mask is None else lengths_from_attention_mask(attention_mask)
        features = self.frontend(input_values, lengths)  # (batch, mels, frames)
        frame_lengths = None if lengths is None else self.frontend.num_frames(lengths)
        return SSPSModelOutput(embeddings=self.encoder(features, frame_lengths))


@dataclass
class SSPSPreTrainingOutput(ModelOutput):
    """Output of `SSPSForPreTraining`: every student view, view-major.

    Args:
        embeddings (`torch.FloatTensor` of shape `(num_views, batch_size, embedding_dim)`):
            Encoder outputs; the global views come first, then the local views (DINO).
        projections (`torch.FloatTensor` of shape `(num_views, batch_size, head_dim)`, *optional*):
            Head outputs (SwAV/VICReg projections, DINO logits); None without a head.
    """

    embeddings: torch.FloatTensor | None = None
    projections: torch.FloatTensor | None = None


class SSPSForPreTraining(SSPSPreTrainedModel):
    """Student encoder + SSL head, and an optional frozen teacher (MoCo key encoder,
    DINO teacher encoder + head) updated by the trainer's EMA after each optimiser step.

    The teacher is a real copy (no shared storage), `requires_grad=False`, saved with
    the model (so averaging and export see it) and never called by `forward`: the trainer runs
    it under `no_grad`. Training code (losses, queues, SSPS) lives in `ssps_trainers/`.
    """

    def __init__(self, config: SSPSConfig) -> None:
        super().__init__(config)
        self.student = SSPSModel(config)
        self.head = build_head(config)
        self.prototypes = (
            SwAVPrototypes(config.projector_output_dim, config.swav_num_prototypes)
            if config.head_type == "swav"
            else None
        )
        self.teacher: SSPSModel | None = None
        self.teacher_head: nn.Module | None = None
        if config.has_teacher:
            self.teacher = SSPSModel(config)
            self.teacher_head = build_head(config)
            for parameter in self.teacher_parameters():
                parameter.requires_grad_(False)
        self.post_init()
        self.reset_teacher()

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """As `PreTrainedModel.save_pretrained`; the folder's `auto_map` also names `SSPSModel`
        for `AutoModel`, so every training checkpoint or averaged run loads as an encoder (the
        student) with `AutoModel.from_pretrained(folder, trust_remote_code=True)`."""
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModel", "modeling_ssps.SSPSModel")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    def teacher_parameters(self) -> list[nn.Parameter]:
        """Parameters of the teacher, in the order of `student_parameters()`."""
        modules = [m for m in (self.teacher, self.teacher_head) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def student_parameters(self) -> list[nn.Parameter]:
        """Student parameters matching `teacher_parameters()` one to one."""
        modules = [self.student] + ([self.head] if self.teacher_head is not None and self.head else [])
        return [p for m in modules for p in m.parameters()]

    @torch.no_grad()
    def reset_teacher(self) -> None:
        """Copy the student into the teacher (start of training)."""
        if self.teacher is None:
            return
        self.teacher.load_state_dict(self.student.state_dict())
        if self.teacher_head is not None and self.head is not None:
            self.teacher_head.load_state_dict(self.head.state_dict())

    def project(self, embeddings: torch.Tensor) -> torch.Tensor | None:
        """Student head on (n, embedding_dim) embeddings."""
        return None if self.head is None else self.head(embeddings)

    def forward(
        self,
        input_values: torch.Tensor,
        local_input_values: torch.Tensor | None = None,
    ) -> SSPSPreTrainingOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_views, num_samples)`):
            Equal-length crops (2 s views; DINO: the 4 s global views).
        local_input_values (`torch.FloatTensor` of shape `(batch_size, num_local, local_samples)`, *optional*):
            DINO local crops (2 s).
        """
        if input_values.ndim != 3:
            raise ValueError(
                "SSPSForPreTraining expects input_values (batch, views, samples), got shape "
                f"{tuple(input_values.shape)}"
            )
        batch = input_values.shape[0]
        groups = [input_values]
        if local_input_values is not None:
            groups.append(local_input_values)
        # BatchNorm batches: one per view (reference, forward_per_view), one per DINO crop group
        # (reference for DINO), or all views of the step together (forward_per_view=False)
        per_view = self.config.forward_per_view and self.config.head_type != "dino"
        per_group = self.config.forward_per_view
        embeddings, projected = [], []
        for views in groups:
            flat = views.transpose(0, 1).reshape(-1, views.shape[-1])  # (views * batch, samples), view-major
            chunks = [views[:, v] for v in range(views.shape[1])] if per_view else [flat]
            for chunk in chunks:
                embeddings.append(self.student(input_values=chunk).embeddings)
                if per_group:
                    projected.append(self.project(embeddings[-1]))
        stacked = torch.cat(embeddings, dim=0)  # (all views * batch, D)
        projections = (None if projected[0] is None else torch.cat(projected)) if per_group else self.project(stacked)
        return SSPSPreTrainingOutput(
            embeddings=stacked.reshape(-1, batch, stacked.shape[-1]),
            projections=None if projections is None else projections.reshape(-1, batch, projections.shape[-1]),
        )


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of a module."""
    return sum(math.prod(p.shape) for p in module.parameters())


__all__ = [
    "AttentiveStatisticsPooling",
    "DINOHead",
    "ProjectionHead",
    "SSPSForPreTraining",
    "SSPSPreTrainingOutput",
    "SwAVPrototypes",
    "ECAPATDNN",
    "FastResNet34",
    "LogMelFrontend",
    "SSPSModel",
    "SSPSModelOutput",
    "SSPSPreTrainedModel",
    "count_parameters",
    "rename_legacy_keys",
]

"""Feature extractor of SSPS encoders: mono float32 16 kHz waveforms -> padded `input_values`
and `attention_mask`. Log-mel features are computed inside the model, so nothing here is
normalised or transformed: the extractor only validates, downmixes on request, and pads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .configuration_ssps import SAMPLING_RATE

logger = logging.get_logger(__name__)

MULTICHANNEL_POLICIES = ("error", "mean", "first")


class SSPSFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Prepares raw audio for `SSPSModel`.

    Each waveform is a 1-D array of samples, or a 2-D array (channels x samples or samples x
    channels: the shorter axis is taken as channels) handled by `multichannel`:
    `"error"` (default) refuses it, `"mean"` averages the channels, `"first"` keeps channel 0.
    A 2-D numpy array passed directly (not inside a list) is a *batch* of equal-length mono
    waveforms, as everywhere in transformers. Waveforms are right-padded with zeros to the longest
    one; `attention_mask` marks the real samples.

    Raises `ValueError` for a sampling rate other than `sampling_rate` (resample first, e.g. with
    the speaker-verification pipeline), for empty, too short (< `min_samples`) or non-finite
    audio, and for multi-channel audio under the `"error"` policy.

    Example:

    ```python
    >>> import numpy as np
    >>> from modeling_ssps import SSPSFeatureExtractor
    >>> extractor = SSPSFeatureExtractor()
    >>> batch = extractor([np.zeros(16000), np.zeros(8000)], sampling_rate=16000, return_tensors="pt")
    >>> batch["input_values"].shape, batch["attention_mask"].sum(-1).tolist()
    (torch.Size([2, 16000]), [16000, 8000])
    ```
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = SAMPLING_RATE,
        padding_value: float = 0.0,
        return_attention_mask: bool = True,
        multichannel: str = "error",
        min_samples: int = 1600,
        **kwargs: Any,
    ) -> None:
        if multichannel not in MULTICHANNEL_POLICIES:
            raise ValueError(
                f"SSPSFeatureExtractor.multichannel must be one of {MULTICHANNEL_POLICIES}, got "
                f"{multichannel!r}"
            )
        if min_samples < 1:
            raise ValueError(f"SSPSFeatureExtractor.min_samples must be >= 1, got {min_samples!r}")
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.multichannel = multichannel
        self.min_samples = min_samples

    def _to_mono(self, waveform: np.ndarray, position: int, policy: str) -> np.ndarray:
        if waveform.ndim == 1:
            return waveform
        if waveform.ndim != 2:
            raise ValueError(
                f"waveform {position} has {waveform.ndim} dimensions; expected samples or "
                "(channels, samples)"
            )
        channels_axis = 0 if waveform.shape[0] <= waveform.shape[1] else 1
        num_channels = waveform.shape[channels_axis]
        if num_channels == 1:
            return waveform.reshape(-1)
        if policy == "error":
            raise ValueError(
                f"waveform {position} has {num_channels} channels (shape {waveform.shape}); pass "
                "multichannel='mean' or 'first' to downmix, or give mono audio"
            )
        if policy == "mean":
            return waveform.mean(axis=channels_axis)
        return np.take(waveform, 0, axis=channels_axis)

    def __call__(  # type: ignore[override]
        self,
        raw_speech: np.ndarray | Sequence[Any],
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        multichannel: str | None = None,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Validate, downmix and pad one waveform or a batch of waveforms.

        Returns a `BatchFeature` with `input_values` (batch, samples) float32 and, unless
        disabled, `attention_mask` (batch, samples) int32. Padding follows the transformers
        conventions, in samples: `padding=True`/"longest" (default), "max_length" (to
        `max_length`), False/"do_not_pad" (equal lengths only); `truncation=True` keeps the first
        `max_length` samples; `pad_to_multiple_of` rounds the padded length up. Unknown keyword
        arguments raise `TypeError`.
        """
        if sampling_rate is None:
            logger.warning_once(
                "SSPSFeatureExtractor was called without sampling_rate; assuming "
                f"{self.sampling_rate} Hz. Pass sampling_rate= to catch wrong-rate audio."
            )
        elif sampling_rate != self.sampling_rate:
            raise ValueError(
                f"SSPSFeatureExtractor expects {self.sampling_rate} Hz audio, got sampling_rate="
                f"{sampling_rate}; resample first (the speaker-verification pipeline does it)"
            )
        policy = self.multichannel if multichannel is None else multichannel
        if policy not in MULTICHANNEL_POLICIES:
            raise ValueError(f"multichannel must be one of {MULTICHANNEL_POLICIES}, got {policy!r}")
        if kwargs:
            raise TypeError(f"SSPSFeatureExtractor got unknown keyword arguments {sorted(kwargs)}")
        strategy = ("longest" if padding else "do_not_pad") if isinstance(padding, bool) else padding
        if strategy not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if (strategy == "max_length" or truncation) and (max_length is None or max_length < 1):
            raise ValueError(f"padding='max_length' and truncation=True need max_length >= 1 (samples), got {max_length!r}")

        if hasattr(raw_speech, "detach"):  # torch tensor, without importing torch here
            raw_speech = raw_speech.detach().cpu().numpy()
        if isinstance(raw_speech, np.ndarray):
            if raw_speech.ndim > 2:
                raise ValueError(
                    f"a numpy input must be (samples,) or (batch, samples), got {raw_speech.shape}"
                )
            waveforms = [raw_speech] if raw_speech.ndim == 1 else list(raw_speech)
        elif isinstance(raw_speech, (list, tuple)):
            if len(raw_speech) == 0:
                raise ValueError("SSPSFeatureExtractor got an empty list of waveforms")
            if all(np.isscalar(x) for x in raw_speech):
                waveforms = [np.asarray(raw_speech)]
            else:
                waveforms = [
                    x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
                    for x in raw_speech
                ]
        else:
            raise ValueError(
                "SSPSFeatureExtractor expects a waveform or a list of waveforms (numpy arrays, "
                f"lists of floats or tensors), got {type(raw_speech).__name__}"
            )

        mono = []
        for position, waveform in enumerate(waveforms):
            waveform = self._to_mono(np.asarray(waveform), position, policy).astype(np.float32)
            if waveform.size == 0:
                raise ValueError(f"waveform {position} is empty")
            if waveform.size < self.min_samples:
                raise ValueError(
                    f"waveform {position} has {waveform.size} samples, fewer than min_samples="
                    f"{self.min_samples} ({self.min_samples / self.sampling_rate:.2f} s)"
                )
            if not np.isfinite(waveform).all():
                raise ValueError(f"waveform {position} contains NaN or infinite samples")
            if truncation:
                waveform = waveform[:max_length]
            mono.append(waveform)

        longest = max(w.size for w in mono)
        if strategy == "max_length":
            if longest > max_length:
                raise ValueError(f"a waveform has {longest} samples, more than max_length={max_length}: pass truncation=True")
            target = max_length
        elif strategy == "do_not_pad":
            if len({w.size for w in mono}) > 1:
                raise ValueError("padding=False needs waveforms of equal length; pass padding=True to pad with a mask")
            target = longest
        else:
            target = longest
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        input_values = np.full((len(mono), target), self.padding_value, dtype=np.float32)
        attention_mask = np.zeros((len(mono), target), dtype=np.int32)
        for row, waveform in enumerate(mono):
            input_values[row, : waveform.size] = waveform
            attention_mask[row, : waveform.size] = 1

        data: dict[str, np.ndarray] = {"input_values": input_values}
        wants_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        if wants_mask:
            data["attention_mask"] = attention_mask
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["SSPSFeatureExtractor"]

"""`MultiViewCollator`: dataset rows -> the named tensors of one SSL step (DESIGN §3.2).

Rows carry `audio` (WAV/FLAC bytes, or a float array for synthetic data), `sample_index`, and
optionally `utt_id`, `speaker_id`, `video_id`. Only the needed ranges are decoded (soundfile
`start=`/`stop=`), utterances shorter than a crop are wrap-padded, and every random draw is a
pure function of (seed, epoch, sample_index), so a resumed or re-sharded run sees the same
crops. Augmentation (`augment`) applies to the training views only, never to the clean SSPS
reference crop (SPEC §3, §13).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import soundfile
import torch

SAMPLING_RATE = 16000


class AudioDecodeError(ValueError):
    """A training row whose audio cannot be used; the message names the utterance."""


def _row_name(row: dict[str, Any]) -> str:
    return str(row.get("utt_id", f"sample_index={row.get('sample_index')}"))


def audio_length(row: dict[str, Any]) -> int:
    """Number of samples of a row's audio (header only for encoded bytes)."""
    audio = row["audio"]
    if isinstance(audio, (bytes, bytearray)):
        try:
            info = soundfile.info(io.BytesIO(audio))
        except Exception as error:  # soundfile raises several types for corrupt data
            raise AudioDecodeError(f"{_row_name(row)}: cannot read audio header ({error})") from error
        if info.samplerate != SAMPLING_RATE:
            raise AudioDecodeError(
                f"{_row_name(row)}: sample rate {info.samplerate} Hz, expected {SAMPLING_RATE} Hz "
                "(re-run prepare_voxceleb.py, which resamples)"
            )
        return int(info.frames)
    return int(np.asarray(audio).shape[-1])


def read_range(row: dict[str, Any], start: int, stop: int) -> np.ndarray:
    """Mono float32 samples [start, stop) of a row's audio."""
    audio = row["audio"]
    if isinstance(audio, (bytes, bytearray)):
        try:
            data, _ = soundfile.read(io.BytesIO(audio), start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as error:
            raise AudioDecodeError(f"{_row_name(row)}: cannot decode audio ({error})") from error
        data = data.mean(axis=1)
    else:
        data = np.asarray(audio, dtype=np.float32)[start:stop]
    if data.size == 0 or not np.isfinite(data).all():
        raise AudioDecodeError(f"{_row_name(row)}: empty or non-finite samples in [{start}, {stop})")
    return data


def random_crop(row: dict[str, Any], length: int, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed crop of `num_samples`; shorter audio is wrap-padded (tiled)."""
    if length >= num_samples:
        start = int(rng.integers(0, length - num_samples + 1))
        return read_range(row, start, start + num_samples)
    whole = read_range(row, 0, length)
    return np.resize(whole, num_samples)  # wrap-pad: repeat from the start


class MultiViewCollator:
    """Collate rows into `input_values` (b, V, T), optional `local_input_values` (b, L, T_l)
    (DINO), optional `reference_values` (b, T_ref) (SSPS runs), `sample_index` (b,), and
    `speaker_id` / `video_id` (b,) when the rows have them.

    Example:

    ```python
    >>> collate = MultiViewCollator(num_views=2, crop_samples=32000, reference_samples=64000)
    >>> batch = collate(rows)   # input_values (b, 2, 32000), reference_values (b, 64000)
    ```
    """

    def __init__(
        self,
        num_views: int = 2,
        crop_samples: int = 32000,
        local_views: int = 0,
        local_crop_samples: int = 32000,
        reference_samples: int | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        seed: int = 1717,
    ) -> None:
        if num_views < 1 or crop_samples < 1:
            raise ValueError(f"need num_views >= 1 and crop_samples >= 1, got {num_views}, {crop_samples}")
        self.num_views = num_views
        self.crop_samples = crop_samples
        self.local_views = local_views
        self.local_crop_samples = local_crop_samples
        self.reference_samples = reference_samples
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        views, locals_, references, indices = [], [], [], []
        for row in rows:
            index = int(row["sample_index"])
            rng = np.random.default_rng([self.seed, self.epoch, index])
            length = audio_length(row)
            crops = [random_crop(row, length, self.crop_samples, rng) for _ in range(self.num_views)]
            local = [random_crop(row, length, self.local_crop_samples, rng) for _ in range(self.local_views)]
            if self.augment is not None:
                crops = [self.augment(c, rng) for c in crops]
                local = [self.augment(c, rng) for c in local]
            views.append(np.stack(crops))
            if local:
                locals_.append(np.stack(local))
            if self.reference_samples is not None:  # clean: never augmented
                references.append(random_crop(row, length, self.reference_samples, rng))
            indices.append(index)
        batch = {
            "input_values": torch.from_numpy(np.stack(views)).float(),
            "sample_index": torch.tensor(indices, dtype=torch.long),
        }
        if locals_:
            batch["local_input_values"] = torch.from_numpy(np.stack(locals_)).float()
        if references:
            batch["reference_values"] = torch.from_numpy(np.stack(references)).float()
        for key in ("speaker_id", "video_id"):
            if all(key in row and isinstance(row[key], (int, np.integer)) for row in rows):
                batch[key] = torch.tensor([int(row[key]) for row in rows], dtype=torch.long)
        return batch

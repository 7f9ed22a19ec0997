"""Any 🤗 audio dataset -> the rows the toolkit reads (docs/architecture.md §8).

`load_audio_dataset` opens a source the way 🤗 datasets does: a `save_to_disk` folder, any
folder `load_dataset` understands (parquet shards, the layout `push_to_hub` writes, an
`audiofolder` with a `metadata.csv`/`.jsonl`), or a Hub id; map-style or streaming.

`standardize` then gives every source the same columns:

- `audio`: the dataset's audio column cast to `Audio(sampling_rate=<model rate>, num_channels=1,
  decode=False)`. Rows keep the encoded file; `ssps_trainers.data.decode_audio` decodes it with the
  library's decoder (which resamples and downmixes) and names the file when it cannot. A plain
  string column of file paths is cast the same way. The toolkit's older binary column (16 kHz
  FLAC bytes) is kept and read with partial decodes.
- `sample_index`: the stable integer SSPS stores its entries under, derived here and never
  asked of the user: the row number of a map-style dataset. A stream keeps its integer
  `--index_column` when it has one (the prepared sets do), else it is numbered by position
  (attached before shuffling, so it names the same utterance on every pass; valid when one
  reader iterates the stream, which `position_indexed` tells `train.py` to check). An index at
  or beyond `num_samples` is refused when it is read.
- `speaker_id`, `video_id`, `utt_id`: renamed from the user's columns when present (labels are
  only ever used for diagnostics and trial matching, never for training).

Every other column is dropped, so a dataloader worker reads only what a step needs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

STANDARD = ("audio", "speaker_id", "video_id", "utt_id")


@dataclass
class DatasetColumns:
    """Which of the user's columns hold what the toolkit calls audio, speaker_id, video_id and
    utt_id, and which split to read. The defaults are those of the toolkit's prepared sets and of
    common VoxCeleb datasets. A dataclass, so `HfArgumentParser` and `add_arguments` both read it."""

    audio_column: str = field(default="audio", metadata={"help": "Audio column (datasets.Audio feature, or file paths)."})
    speaker_column: str = field(default="speaker_id", metadata={"help": "Speaker label column, if any (diagnostics only)."})
    video_column: str = field(default="video_id", metadata={"help": "Session/video column, if any (diagnostics only)."})
    id_column: str = field(default="utt_id", metadata={"help": "Utterance name column (the names trial lists use)."})
    index_column: str = field(
        default="sample_index", metadata={"help": "Streams only: an integer column 0..N-1 naming each utterance (else: stream position)."}
    )
    split: str | None = field(default=None, metadata={"help": "Split to read (default: the only one, else 'train')."})

    def renames(self) -> dict[str, str]:
        return dict(zip((self.audio_column, self.speaker_column, self.video_column, self.id_column), STANDARD))


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """`DatasetColumns` as argparse options (`--audio_column`, ...), for the scripts that use argparse."""
    for item in fields(DatasetColumns):
        parser.add_argument(f"--{prefix}{item.name}", default=item.default, help=item.metadata["help"])


def columns_from(namespace: argparse.Namespace, prefix: str = "") -> DatasetColumns:
    return DatasetColumns(**{item.name: getattr(namespace, prefix + item.name) for item in fields(DatasetColumns)})


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").exists() or (folder / "state.json").exists() or (folder / "dataset_dict.json").exists()


def _pick_split(splits: Any, split: str | None, source: object) -> Any:
    names = sorted(splits)
    if split is None:
        split = names[0] if len(names) == 1 else "train"
    if split not in splits:
        raise ValueError(f"{source}: no split {split!r} (it has {names}): pass --split")
    return splits[split]


def load_audio_dataset(source: str | Path, split: str | None = None, streaming: bool = False) -> Any:
    """A `Dataset` (or `IterableDataset` with `streaming`) from a folder or a Hub id; `split`
    defaults to the only split, else "train"."""
    from datasets import Dataset, IterableDataset, load_dataset, load_from_disk

    path = Path(source)
    if path.is_dir() and _is_saved_dataset(path):
        dataset = load_from_disk(str(path))
        if not isinstance(dataset, Dataset):
            dataset = _pick_split(dataset, split, path)
        return dataset.to_iterable_dataset() if streaming else dataset
    if path.exists():
        where = f"{path}: not a dataset 🤗 datasets can load"
    elif str(source).startswith((".", "/", "~")) or path.suffix:
        raise FileNotFoundError(f"{source} does not exist")
    else:
        where = f"{source}: not a local folder, and loading it as a Hub dataset failed"
    try:  # parquet / arrow / csv shards, the push_to_hub layout, audiofolder, or a Hub id
        loaded = load_dataset(str(source), split=split, streaming=streaming)  # split=None: all, picked below
    except Exception as error:  # the library raises several types for an unreadable source
        raise ValueError(f"{where} ({type(error).__name__}: {error})") from error
    return loaded if isinstance(loaded, (Dataset, IterableDataset)) else _pick_split(loaded, split, source)


def standardize(dataset: Any, sampling_rate: int, columns: DatasetColumns | None = None, num_samples: int | None = None) -> Any:
    """The dataset with the toolkit's columns (see the module docstring)."""
    from datasets import Audio, IterableDataset, Value

    columns = columns or DatasetColumns()
    features = getattr(dataset, "features", None)
    names = list(features) if features is not None else None
    if names is not None:
        if columns.audio_column not in names:
            raise ValueError(f"the dataset has no audio column {columns.audio_column!r} (it has {sorted(names)}): pass --audio_column")
        feature = features[columns.audio_column]
        dtype = feature.dtype if isinstance(feature, Value) else None
        legacy = dtype in ("binary", "large_binary")
        if not legacy and not isinstance(feature, Audio) and dtype not in ("string", "large_string"):
            raise ValueError(f"column {columns.audio_column!r} is {feature}, not audio: expected the datasets.Audio feature or file paths")
    else:
        legacy = False
    renames = {old: new for old, new in columns.renames().items() if names is None or old in names}
    streamed = isinstance(dataset, IterableDataset)
    if streamed and names is not None and columns.index_column in names:
        renames[columns.index_column] = "sample_index"
    if names is not None:
        clashing = [new for old, new in renames.items() if old != new and new in names]
        if clashing:
            dataset = dataset.remove_columns(clashing)  # e.g. a "speaker_id" when --speaker_column names another
        keep = list(renames)
        dataset = dataset.select_columns(keep)
    indexed = "sample_index" in renames.values()  # a stream with its own index column
    renames = {old: new for old, new in renames.items() if old != new}
    if renames:
        dataset = dataset.rename_columns(renames)
    if not legacy:
        dataset = dataset.cast_column("audio", Audio(sampling_rate=sampling_rate, num_channels=1, decode=False))
    if not streamed:
        return dataset.add_column("sample_index", list(range(len(dataset))))
    if indexed:
        return dataset.map(_checked_index, fn_kwargs={"num_samples": num_samples})
    return dataset.map(_stream_index, with_indices=True, fn_kwargs={"num_samples": num_samples})


def position_indexed(dataset: Any, columns: DatasetColumns | None = None) -> bool:
    """Whether a raw (not yet standardised) stream will be numbered by position."""
    names = getattr(dataset, "column_names", None) or []
    return (columns or DatasetColumns()).index_column not in names


def _checked_index(row: dict[str, Any], num_samples: int | None) -> dict[str, int]:
    index = int(row["sample_index"])
    if index < 0 or (num_samples is not None and index >= num_samples):
        raise ValueError(f"index column value {index} is outside [0, --num_train_samples={num_samples})")
    return {"sample_index": index}


def _stream_index(row: dict[str, Any], index: int, num_samples: int | None) -> dict[str, int]:
    if num_samples is not None and index >= num_samples:
        raise ValueError(
            f"the stream has more than --num_train_samples={num_samples} rows (row {index}): set it to the number of training utterances"
        )
    return {"sample_index": index}


def files_dataset(root: str | Path, names: list[str]) -> Any:
    """A dataset of the audio files `root/<name>` (wav, flac, m4a, ... anything the decoder
    reads), with `utt_id` = name: what `evaluate_sv.py --audio_root` scores, with no prepare step."""
    from datasets import Audio, Dataset

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(names)} files are not under {root}, e.g. {missing[:5]}")
    dataset = Dataset.from_dict({"audio": [str(root / name) for name in names], "utt_id": list(names)})
    return dataset.cast_column("audio", Audio(decode=False))


def utterance_names(dataset: Any, wanted: Any = ()) -> list[str]:
    """The name of every row: its `utt_id`, else its audio file's path. A row whose path is not
    itself one of the `wanted` names (those of the trial lists) takes the wanted name its path
    ends with (`/data/vox1/wav/id10270/x/00001.wav` -> `id10270/x/00001.wav`), so an
    audiofolder or a list of files matches VoxCeleb-format trials without an id column."""
    import pyarrow.compute
    from datasets import Audio

    if "utt_id" in dataset.column_names:
        return [str(name) for name in dataset["utt_id"]]
    if not isinstance(dataset.features["audio"], Audio):
        raise ValueError("the dataset has no utt_id column and its audio has no file paths: pass --id_column")
    paths = pyarrow.compute.struct_field(dataset.data.column("audio"), "path").to_pylist()  # no audio bytes read
    if not all(paths):
        raise ValueError("the dataset has no utt_id column and a row's audio has no file path: pass --id_column")
    wanted = set(wanted)
    names = []
    for path in paths:
        name = Path(path).as_posix()
        if name not in wanted:
            parts = name.split("/")
            name = next(("/".join(parts[k:]) for k in range(1, len(parts)) if "/".join(parts[k:]) in wanted), name)
        names.append(name)
    return names

"""Local VoxCeleb-layout audio -> standard 🤗 audio datasets on disk (Arrow) and parquet shards.

    python scripts/prepare_voxceleb.py --train_root data/vox2/dev/aac --test_root data/vox1/test/wav \\
        --trials data/vox1/veri_test2.txt --output_dir data/prepared [--push_to_hub user/voxceleb-ssps]

The fast path for raw VoxCeleb trees (parallel, resumable, every file checked), not a
requirement: the training scripts read any 🤗 audio dataset. Outputs under --output_dir:
    train/                 Arrow dataset: audio (`datasets.Audio`, 16 kHz mono FLAC), utt_id,
                           speaker_id, video_id, duration, sample_index (row position)
    train_parquet/data/    the same rows as parquet shards in the layout `push_to_hub` writes
                           (`train-XXXXX-of-YYYYY.parquet`): `load_dataset(folder, streaming=True)`
    test/                  the test utterances (same columns)
    trials/<name>.txt      copies of the trial lists (label enroll test), checked against test/
    report.json            counts, skipped (unreadable) files with reasons, warnings

Resumable: files are processed in shards written atomically to <output_dir>/_work; a re-run
skips finished shards. Unreadable files are skipped, counted and listed (never silently).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from datasets import Audio, Dataset, DatasetDict, Features, Value, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm

from ssps_trainers.corpus import SAMPLING_RATE, UnreadableAudio, decode_file, ignored_files, list_audio, load_trials

FEATURES = Features({
    "audio": Audio(sampling_rate=SAMPLING_RATE), "utt_id": Value("string"), "speaker_id": Value("string"),
    "video_id": Value("string"), "duration": Value("float32"),
})  # fmt: skip

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--train_root", type=Path, help="<root>/<speaker>/<video>/<utt>.{wav,flac,m4a}")
parser.add_argument("--test_root", type=Path, help="Test utterances in the same layout (VoxCeleb1 test).")
parser.add_argument("--trials", type=Path, nargs="*", default=[], help="Trial lists (label enroll test).")
parser.add_argument("--output_dir", type=Path, required=True)
parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
parser.add_argument("--shard_size", type=int, default=2000, help="Files per resumable work shard.")
parser.add_argument("--parquet_shards", type=int, default=4, help="Parquet files for streaming.")
parser.add_argument("--min_seconds", type=float, default=0.5, help="Shorter files are skipped.")
parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="Also publish train/test as a Hub dataset (token: HF_TOKEN or the HF login).")
parser.add_argument("--private", action="store_true", help="With --push_to_hub: a private dataset repository.")
args = parser.parse_args()
if args.train_root is None and args.test_root is None:
    raise SystemExit("give --train_root and/or --test_root")


def row(job: tuple[str, str]) -> dict[str, object]:
    root, name = job
    path = Path(root) / name
    try:
        decoded = decode_file(path, args.min_seconds)
    except UnreadableAudio as error:
        return {"error": str(error)}
    speaker, video = Path(name).parts[:2]
    return {
        "audio": {"bytes": decoded.flac, "path": Path(name).with_suffix(".flac").as_posix()}, "utt_id": Path(name).as_posix(), "speaker_id": speaker,
        "video_id": video, "duration": decoded.num_samples / SAMPLING_RATE, "warnings": list(decoded.warnings),
    }  # fmt: skip


# everything that changes the rows of a shard besides its files (bump on decoding changes)
SETTINGS = {"min_seconds": args.min_seconds, "decoder": "flac16-level-normalised-v2", "schema": "audio-feature-v3"}


def fingerprint(root: Path, names: list[str]) -> str:
    """What a work shard was built from: its files (name, size, mtime) and the settings."""
    entries = []
    for name in names:
        stat = (root / name).stat()
        entries.append((name, stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps([entries, SETTINGS]).encode()).hexdigest()


def build(split: str, root: Path, report: dict[str, object]) -> Dataset:
    work = args.output_dir / "_work" / split
    work.mkdir(parents=True, exist_ok=True)
    files = [p.relative_to(root).as_posix() for p in list_audio(root)]
    ignored = ignored_files(root)
    if ignored:
        print(f"{split}: {len(ignored)} files ignored (wrong depth or suffix), e.g. {ignored[:3]}")
    if not files:
        raise SystemExit(f"no audio files under {root}/<speaker>/<video>/")
    redone = 0
    skipped: list[str] = []
    warnings: list[str] = []
    shards = []
    with ProcessPoolExecutor(args.num_workers) as pool:
        for number, start in enumerate(tqdm(range(0, len(files), args.shard_size), desc=f"{split} shards")):
            target = work / f"shard-{number:05d}"
            names = files[start : start + args.shard_size]
            expected = fingerprint(root, names)
            done = json.loads((target / "done.json").read_text()) if (target / "done.json").exists() else None
            if done is not None and done.get("fingerprint") != expected:
                redone += 1  # files added, removed or changed, another --shard_size, or other settings
                done = None
            if done is None:
                results = list(pool.map(row, [(str(root), f) for f in names], chunksize=16))
                good = [r for r in results if "error" not in r]
                info = {
                    "skipped": [r["error"] for r in results if "error" in r],
                    "warnings": [w for r in good for w in r.pop("warnings")],  # type: ignore[attr-defined]
                }
                columns = {key: [r[key] for r in good] for key in FEATURES}
                info["rows"] = len(good)
                info["fingerprint"] = expected
                temporary = work / f".tmp-{number:05d}"
                shutil.rmtree(temporary, ignore_errors=True)
                temporary.mkdir(parents=True)
                if good:  # an all-unreadable shard keeps only its report
                    Dataset.from_dict(columns, features=FEATURES).save_to_disk(str(temporary))
                (temporary / "done.json").write_text(json.dumps(info))
                shutil.rmtree(target, ignore_errors=True)
                os.replace(temporary, target)
            info = json.loads((target / "done.json").read_text())
            skipped += info["skipped"]
            warnings += info["warnings"]
            if info["rows"]:
                shards.append(Dataset.load_from_disk(str(target)))
    if not shards:
        raise SystemExit(f"no readable audio under {root}; skipped: {skipped[:5]}")
    dataset = concatenate_datasets(shards)
    dataset = dataset.add_column("sample_index", list(range(len(dataset))))  # row position, once
    for stale in sorted(work.glob("shard-*"))[len(range(0, len(files), args.shard_size)) :]:
        shutil.rmtree(stale)  # our own shards beyond the current count (fewer files or larger shards)
    if redone:
        print(f"{split}: {redone} work shards were stale (their files or settings changed) and were rebuilt")
    report[split] = {"files": len(files), "rows": len(dataset), "skipped": skipped, "ignored": ignored, "warnings": warnings}
    if skipped:
        print(f"{split}: skipped {len(skipped)} unreadable files, e.g. {skipped[:3]}")
    return dataset


report: dict[str, object] = {}
if args.train_root is not None:
    train = build("train", args.train_root, report)
    train.save_to_disk(str(args.output_dir / "train"))
    parquet = args.output_dir / "train_parquet" / "data"  # the file layout of push_to_hub
    parquet.mkdir(parents=True, exist_ok=True)
    num_shards = max(1, min(args.parquet_shards, len(train)))
    for stale in (args.output_dir / "train_parquet").glob("train-*.parquet"):
        print(f"removing {stale}: a shard of the earlier layout (train_parquet/*.parquet) that load_dataset would read twice")
        stale.unlink()  # ours: written by an earlier version of this command in this output folder
    for stale in parquet.glob("train-*.parquet"):
        if not stale.name.endswith(f"-of-{num_shards:05d}.parquet"):
            stale.unlink()  # our own shards of an earlier run with another --parquet_shards
    for shard in range(num_shards):
        target = parquet / f"train-{shard:05d}-of-{num_shards:05d}.parquet"
        train.shard(num_shards, shard, contiguous=True).to_parquet(str(target.with_suffix(".tmp")))
        os.replace(target.with_suffix(".tmp"), target)
try:  # read (and refused) before any decoding
    trial_lists = {path: load_trials(path) for path in args.trials}
except (OSError, ValueError) as error:
    raise SystemExit(str(error)) from error
if args.test_root is not None and trial_lists:
    listed = {p.relative_to(args.test_root).as_posix() for p in list_audio(args.test_root)}
    for path, trials in trial_lists.items():
        missing = sorted({u for _, a, b in trials for u in (a, b) if u not in listed})
        if missing:
            raise SystemExit(f"{path}: {len(missing)} trial utterances are not files under {args.test_root}, e.g. {missing[:5]}")
if args.test_root is not None:
    test = build("test", args.test_root, report)
    test.save_to_disk(str(args.output_dir / "test"))
    names = set(test["utt_id"])
    (args.output_dir / "trials").mkdir(parents=True, exist_ok=True)
    for path, trials in trial_lists.items():
        missing = sorted({u for _, a, b in trials for u in (a, b) if u not in names})
        if missing:
            raise SystemExit(f"{path}: {len(missing)} trial utterances were unreadable in {args.test_root}, e.g. {missing[:5]}")
        shutil.copy(path, args.output_dir / "trials" / path.name)
        report.setdefault("trials", {})[path.name] = len(trials)  # type: ignore[union-attr]
(args.output_dir / "report.json").write_text(json.dumps(report, indent=2))
if args.push_to_hub:
    published = DatasetDict({name: load_from_disk(str(args.output_dir / name)) for name in ("train", "test") if (args.output_dir / name).exists()})
    published.push_to_hub(args.push_to_hub, private=args.private)  # token from HF_TOKEN or the login, never printed
    print(f"published {sorted(published)} to the Hub dataset {args.push_to_hub}")
print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk in ("files", "rows")} if isinstance(v, dict) and "rows" in v else v)
                  for k, v in report.items()}, indent=2))  # fmt: skip

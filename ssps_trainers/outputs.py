"""Output folders of the command-line tools: no command deletes what it did not create.

`claim_output_dir` refuses a folder that holds (or is) one of the command's inputs or any
training checkpoints, and a non-empty folder unless the user passed `--overwrite`; it never
deletes anything itself. `replace_dir` moves a fully written staging folder into place, so a
killed command leaves either the old folder or the new one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path


def claim_output_dir(path: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Check that `path` may receive a command's output; raise SystemExit with the reason."""
    target = path.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if target == source or target in source.parents or source in target.parents:
            raise SystemExit(f"--output_dir {path} overlaps the input {given}: choose another folder")
    if not target.exists():
        return
    if not target.is_dir():
        raise SystemExit(f"--output_dir {path} exists and is not a folder")
    held = sorted(p.name for p in target.iterdir())
    if any(name.startswith("checkpoint-") for name in held):
        raise SystemExit(f"--output_dir {path} holds training checkpoints ({', '.join(held[:3])}...): choose another folder")
    if held and not overwrite:
        raise SystemExit(f"--output_dir {path} is not empty ({', '.join(held[:5])}): pass --overwrite to replace it")


def replace_dir(staged: Path, final: Path) -> None:
    """Put the complete folder `staged` at `final`, replacing a previous output there."""
    previous = final.with_name(final.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)  # our own leftover from an interrupted replace
    if final.exists():
        final.rename(previous)
    staged.rename(final)
    if previous.exists():
        shutil.rmtree(previous)

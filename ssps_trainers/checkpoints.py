"""Checkpoint folders: which are complete, which to resume from, and averaging (docs/method.md §14).

A checkpoint is complete or it does not exist: `SSLTrainer` writes every file of a checkpoint
(weights, optimiser, scheduler, RNG states, trainer state, SSL state) under
`<run>/.staging/checkpoint-N`, flushes them, writes `checkpoint_complete.json` (the file names)
last, and renames the folder into place. A kill at any moment leaves either the previous
complete checkpoints or the new one; a folder without the marker (from an older version, or
damaged since) is never picked for an automatic resume, and a warning names it.

Averaging: the tested model is the arithmetic mean of the last epoch checkpoints. Every floating
tensor is averaged (BatchNorm running statistics included); integer tensors
(`num_batches_tracked`) come from the last checkpoint; SSPS and queue state live in
`ssl_state.safetensors` and are never part of it."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WEIGHTS_NAME = "model.safetensors"
SSL_STATE_NAME = "ssl_state.safetensors"
COMPLETE_NAME = "checkpoint_complete.json"
STAGING_NAME = ".staging"
logger = logging.getLogger(__name__)


def _step(folder: Path) -> int:
    return int(folder.name.split("-")[1])


def _checkpoint_folders(run_dir: str | Path) -> list[Path]:
    """`checkpoint-<step>` folders of a run, sorted by step."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name) and p.is_dir()]
    return sorted(found, key=_step)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """`checkpoint-<step>` folders holding weights, sorted by step."""
    return [p for p in _checkpoint_folders(run_dir) if (p / WEIGHTS_NAME).exists()]


def _marker(folder: Path) -> dict[str, object]:
    return dict(json.loads((folder / COMPLETE_NAME).read_text()))


def incomplete_reason(folder: Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None when it is."""
    marker = folder / COMPLETE_NAME
    if not marker.is_file():
        return f"no {COMPLETE_NAME} (interrupted save, or written by an older version)"
    try:
        files = list(_marker(folder)["files"])  # type: ignore[call-overload]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable {COMPLETE_NAME} ({error})"
    for name in files:
        path = folder / name
        if not path.is_file() or path.stat().st_size == 0:
            return f"{name} is missing or empty"
    return None


def complete_checkpoints(run_dir: str | Path, resumable: bool = False, warn: bool = True) -> list[Path]:
    """Complete `checkpoint-<step>` folders of a run, by step; incomplete ones are skipped with
    a warning that names them. `resumable`: only those that still hold their SSL state (older
    checkpoints keep only their weights, for averaging: `strip_ssl_state`)."""
    out = []
    for folder in _checkpoint_folders(run_dir):
        reason = incomplete_reason(folder)
        if reason is not None:
            if warn:
                logger.warning(f"skipping checkpoint {folder}: {reason}")
        elif not resumable or _marker(folder).get("resumable", True):
            out.append(folder)
    return out


def latest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete, resumable checkpoint of a run (what an automatic resume uses)."""
    if not Path(run_dir).is_dir():
        return None
    found = complete_checkpoints(run_dir, resumable=True)
    return found[-1] if found else None


def write_ssl_state(folder: Path, tensors: dict[str, torch.Tensor], step: int) -> None:
    """`ssl_state.safetensors` of a checkpoint (temp file + rename): sections `moco.*`,
    `swav.*`, `dino.*`, `ssps.*`."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    temporary = folder / (SSL_STATE_NAME + ".tmp")
    save_file(contiguous, str(temporary), metadata={"global_step": str(step)})
    os.replace(temporary, folder / SSL_STATE_NAME)


def read_ssl_state(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's SSL state; {} when it has none."""
    path = folder / SSL_STATE_NAME
    return load_file(str(path)) if path.exists() else {}


def ssl_state_sections(folder: Path) -> set[str]:
    """Names of the sections a checkpoint's SSL state holds (read from its header only)."""
    path = folder / SSL_STATE_NAME
    if not path.exists():
        return set()
    with safe_open(str(path), "pt") as handle:
        return {key.split(".", 1)[0] for key in handle.keys()}


def saved_with_ssps(folder: Path) -> bool:
    """Whether the run that saved `folder` had SSPS on: its completion marker says so (older
    checkpoints: SSPS diagnostics in its trainer-state logs)."""
    if (folder / COMPLETE_NAME).exists():
        return bool(_marker(folder).get("ssps", False))
    state = folder / "trainer_state.json"
    history = json.loads(state.read_text()).get("log_history", []) if state.exists() else []
    return any(any(key.startswith("ssps/") for key in entry) for entry in history)


def section(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The `name.*` entries of an SSL state, without the prefix."""
    prefix = name + "."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def strip_ssl_state(folder: Path) -> None:
    """Turn a complete checkpoint into a weights-only one: the marker is rewritten first
    (`resumable: false`), then the SSL state is removed."""
    if not (folder / SSL_STATE_NAME).exists() or incomplete_reason(folder) is not None:
        return
    marker = _marker(folder)
    marker["files"] = [f for f in marker["files"] if f != SSL_STATE_NAME]  # type: ignore[attr-defined]
    marker["resumable"] = False
    temporary = folder / (COMPLETE_NAME + ".tmp")
    temporary.write_text(json.dumps(marker, indent=1))
    os.replace(temporary, folder / COMPLETE_NAME)
    (folder / SSL_STATE_NAME).unlink()


def fsync_tree(folder: Path) -> None:
    """Flush every file of `folder` and the folder itself to disk."""
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def mark_complete(folder: Path, ssps: bool = False) -> None:
    """Flush `folder`'s files, then write the completion marker listing them (temp + rename);
    `ssps`: the run had SSPS on, so its SSL state must hold SSPS stores."""
    fsync_tree(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != COMPLETE_NAME)
    temporary = folder / (COMPLETE_NAME + ".tmp")
    temporary.write_text(json.dumps({"files": files, "resumable": True, "ssps": ssps}, indent=1))
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, folder / COMPLETE_NAME)
    fsync_dir(folder)


def average_state_dicts(checkpoints: list[Path]) -> dict[str, torch.Tensor]:
    """Mean of the `model.safetensors` of `checkpoints` (the last one provides integer tensors)."""
    if not checkpoints:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for position, folder in enumerate(checkpoints):
        path = folder / WEIGHTS_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing")
        tensors = load_file(str(path))
        current = {k: tuple(v.shape) for k, v in tensors.items()}
        if position and current != shapes:
            raise ValueError(f"{path} has different tensors than {checkpoints[0] / WEIGHTS_NAME}")
        shapes = current
        for key, value in tensors.items():
            if value.dtype.is_floating_point:
                total[key] = total.get(key, torch.zeros_like(value, dtype=torch.float64)) + value.double()
            else:
                total.setdefault(key, value)
        last = tensors
    count = len(checkpoints)
    return {
        key: (value / count).to(last[key].dtype) if last[key].dtype.is_floating_point else last[key]
        for key, value in total.items()
    }

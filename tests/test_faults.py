"""Kill -9 at any moment, the same command resumes: a small MoCo + SSPS run is killed between
saves and at every point inside a save, restarted each time with the same command, and must
end with bit-identical losses, weights and SSL state to an uninterrupted run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

DRIVER = Path(__file__).resolve().parent / "faults" / "train_tiny.py"
FAULTS = ["step:7", "trainer_files:1", "before_rename:1", "zero_optimizer:1", "rotation:2"]


def run(output_dir: Path, fault: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), str(output_dir), *([fault] if fault else [])],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_kill_anywhere_then_the_same_command_resumes_bit_identically(tmp_path) -> None:
    reference = run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    faulted = tmp_path / "faulted"
    for fault in FAULTS:
        result = run(faulted, fault)
        assert result.returncode == -9, f"{fault}: expected SIGKILL, got {result.returncode}\n{result.stderr[-3000:]}"
        # whatever the moment of death, every checkpoint folder in place is complete
        for folder in faulted.glob("checkpoint-*"):
            assert (folder / "checkpoint_complete.json").exists(), f"{fault}: {folder} is in place but incomplete"
    # folders a crash of another tool (or an older version) could leave: skipped, named, kept
    (faulted / "checkpoint-1000").mkdir()
    (faulted / "checkpoint-1002").mkdir()
    (faulted / "checkpoint-1002" / "config.json").write_text("{}")
    final = run(faulted)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "checkpoint-1000" in final.stderr and "checkpoint-1002" in final.stderr  # the warnings name them
    assert (faulted / "checkpoint-1002" / "config.json").exists()  # not ours: never deleted
    a = json.loads((tmp_path / "reference" / "result.json").read_text())
    b = json.loads((faulted / "result.json").read_text())
    assert b["resumed_from"] is not None
    assert a["losses"] == b["losses"] and len(a["losses"]) == 12
    assert a["stores"] == b["stores"]
    wa = torch.load(tmp_path / "reference" / "final_weights.pt", weights_only=True)
    wb = torch.load(faulted / "final_weights.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # rotation kept 2 complete checkpoints; only the newest still holds the SSL state
    complete = sorted((p for p in faulted.glob("checkpoint-*") if (p / "checkpoint_complete.json").exists()),
                      key=lambda p: int(p.name.split("-")[1]))  # fmt: skip
    assert [p.name for p in complete] == ["checkpoint-10", "checkpoint-12"]
    assert not (complete[0] / "ssl_state.safetensors").exists() and (complete[1] / "ssl_state.safetensors").exists()

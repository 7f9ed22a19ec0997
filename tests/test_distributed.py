"""Two real processes on CPU (gloo) through `accelerate launch --multi_gpu --num_processes 2`
(`--cpu --num_processes 2` would silently run one process)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def launch(script: str, *args: str, timeout: int = 600) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               str(REPO_ROOT / "tests" / "distributed" / script), *args]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


@pytest.mark.multigpu
def test_gathered_losses_match_one_process(tmp_path) -> None:
    report = tmp_path / "report.json"
    launch("gather_grad.py", str(report))
    result = json.loads(report.read_text())
    assert result["world"] == 2
    assert result["max_abs_diff"]["nt_xent"] < 1e-6
    assert result["max_abs_diff"]["vicreg"] < 1e-6


@pytest.mark.multigpu
@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "moco", "swav", "vicreg", "dino"])
def test_two_process_training_keeps_replicated_stores_identical(method, tmp_path) -> None:
    report = tmp_path / "report.json"
    launch("train_ssps.py", method, str(tmp_path / "run"), str(report))
    result = json.loads(report.read_text())
    assert result["world"] == 2
    assert result["stores_identical"] and result["weights_identical"]
    assert result["filled"] == 16 and result["clustered_epoch"] == 1 and result["steps"] == 8
    assert result["coverage_logged"]

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_ssps import SSPSConfig, SSPSForPreTraining
from ssps_trainers.checkpoints import average_state_dicts, list_checkpoints


def save_checkpoints(root: Path, values: list[float]) -> SSPSConfig:
    config = SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1), embedding_dim=8)
    for step, value in zip((10, 2, 30), values):  # folder names out of order on purpose
        model = SSPSForPreTraining(config)
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.dtype.is_floating_point:
                    tensor.fill_(value)
                else:
                    tensor.fill_(step)
        model.save_pretrained(root / f"checkpoint-{step}")
    return config


def test_average_of_floats_and_last_integers(tmp_path) -> None:
    save_checkpoints(tmp_path, [1.0, 2.0, 6.0])
    checkpoints = list_checkpoints(tmp_path)
    assert [p.name for p in checkpoints] == ["checkpoint-2", "checkpoint-10", "checkpoint-30"]
    averaged = average_state_dicts(checkpoints[-2:])  # steps 10 and 30: values 1 and 6
    assert torch.all(averaged["student.encoder.projection.weight"] == 3.5)
    assert torch.all(averaged["student.encoder.stem_norm.running_mean"] == 3.5)  # BN statistics too
    assert int(averaged["student.encoder.stem_norm.num_batches_tracked"]) == 30  # from the last


def test_script_writes_a_loadable_folder(tmp_path) -> None:
    save_checkpoints(tmp_path / "run", [1.0, 2.0, 6.0])
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(repo / "scripts" / "average_checkpoints.py"), "--run_dir", str(tmp_path / "run"),
         "--last", "3", "--output_dir", str(tmp_path / "avg")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    model = SSPSForPreTraining.from_pretrained(tmp_path / "avg")
    assert torch.all(model.student.encoder.projection.weight == 3.0)
    bad = subprocess.run(
        [sys.executable, str(repo / "scripts" / "average_checkpoints.py"), "--run_dir", str(tmp_path / "run"),
         "--last", "5", "--output_dir", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "fewer than --last 5" in bad.stderr
    # the output exists now: refused without --overwrite, replaced with it
    again = [sys.executable, str(repo / "scripts" / "average_checkpoints.py"), "--run_dir", str(tmp_path / "run"), "--last", "2",
             "--output_dir", str(tmp_path / "avg")]  # fmt: skip
    refused = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    assert torch.all(SSPSForPreTraining.from_pretrained(tmp_path / "avg").student.encoder.projection.weight == 3.0)
    assert subprocess.run([*again, "--overwrite"], capture_output=True, text=True, timeout=300).returncode == 0
    assert torch.all(SSPSForPreTraining.from_pretrained(tmp_path / "avg").student.encoder.projection.weight == 3.5)  # the last two
    into_run = subprocess.run([*again[:-1], str(tmp_path / "run"), "--overwrite"], capture_output=True, text=True, timeout=300)
    assert into_run.returncode != 0 and "run folder" in into_run.stderr
    assert len(list_checkpoints(tmp_path / "run")) == 3


def test_mismatched_checkpoints_are_refused(tmp_path) -> None:
    save_checkpoints(tmp_path, [1.0, 2.0, 3.0])
    other = SSPSForPreTraining(SSPSConfig(encoder_type="fast_resnet34", resnet_layers=(1, 1, 1, 1), embedding_dim=8))
    other.save_pretrained(tmp_path / "checkpoint-40")
    with pytest.raises(ValueError, match="different tensors"):
        average_state_dicts(list_checkpoints(tmp_path))

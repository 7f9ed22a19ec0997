"""The package works outside a checkout: the wheel installed into a fresh environment gives the
console scripts, with the recipes and card assets inside the package."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import synthetic_voice
from test_ssl_trainer import tiny_config

from modeling_ssps import SSPSModel
from ssps_trainers.cli import pop_recipe, recipe_names, resolve_recipe

REPO = Path(__file__).resolve().parents[1]


def test_recipes_by_name_or_path_in_either_flag_form(tmp_path) -> None:
    assert {"ecapa/simclr_ssps", "demo/simclr", "resnet34/dino_ssps"} <= set(recipe_names())
    assert resolve_recipe("ecapa/simclr_ssps") == resolve_recipe("ecapa/simclr_ssps.json")
    assert resolve_recipe("ecapa/simclr_ssps").read_text() == (REPO / "configs" / "ecapa" / "simclr_ssps.json").read_text()
    (tmp_path / "mine.json").write_text("{}")
    assert resolve_recipe(str(tmp_path / "mine.json")) == tmp_path / "mine.json"
    with pytest.raises(SystemExit, match="neither a file nor a shipped recipe.*ecapa/simclr_ssps"):
        resolve_recipe("ecapa/nope")
    assert pop_recipe(["--a", "1", "--recipe", "x", "--b"]) == (["--a", "1", "--b"], "x")
    assert pop_recipe(["--recipe=y", "--a"]) == (["--a"], "y")


@pytest.mark.slow
def test_the_wheel_in_a_fresh_environment_outside_the_repository(tmp_path, rng) -> None:
    source = tmp_path / "source"  # built from a copy: a build writes build/ and egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "modeling_ssps", "ssps_trainers"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True)  # fmt: skip
    wheel = next((tmp_path / "dist").glob("ssps_speaker-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    # the dependencies (torch, transformers, ...) come from this environment's site-packages, added as
    # a plain path: its .pth files, among them this checkout's editable install, are not processed
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import ssps_trainers, modeling_ssps; print(ssps_trainers.__file__, modeling_ssps.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout  # fmt: skip
    assert str(REPO) not in where and str(venv) in where
    bin_dir = venv / "bin"
    help_text = subprocess.run([str(bin_dir / "ssps-train"), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert help_text.returncode == 0 and "--recipe NAME|FILE" in help_text.stdout and "--audio_column" in help_text.stdout
    bad = subprocess.run([str(bin_dir / "ssps-train"), "--recipe=ecapa/nope"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert bad.returncode != 0 and "ecapa/simclr_ssps" in bad.stderr  # the shipped recipes, listed from the wheel
    # ssps-evaluate on a tiny model and a trial list over a folder of files
    names = []
    for speaker, f0 in (("a", 120.0), ("b", 210.0)):
        for utterance in range(2):
            names.append(f"{speaker}/v/{utterance}.wav")
            (tmp_path / "wav" / speaker / "v").mkdir(parents=True, exist_ok=True)
            soundfile.write(tmp_path / "wav" / names[-1], synthetic_voice(rng, 16000, f0 + 9 * utterance), 16000)
    (tmp_path / "trials.txt").write_text("1 a/v/0.wav a/v/1.wav\n0 a/v/0.wav b/v/0.wav\n1 b/v/0.wav b/v/1.wav\n0 a/v/1.wav b/v/1.wav\n")
    torch.manual_seed(0)
    SSPSModel(tiny_config("simclr")).save_pretrained(tmp_path / "model")
    result = subprocess.run([str(bin_dir / "ssps-evaluate"), "--model", "model", "--audio_root", "wav", "--trials", "trials.txt",
                             "--no_plots", "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "model" / "eval" / "report.json").read_text())
    assert report["lists"]["trials.txt"]["trials"] == 4 and np.isfinite(report["lists"]["trials.txt"]["eer_percent"])


def test_apply_recipe_strict_or_only_the_known_settings(tmp_path) -> None:
    import argparse

    from ssps_trainers.cli import apply_recipe

    (tmp_path / "r.json").write_text(json.dumps({"ssps_num_clusters": 7, "encoder": "ecapa_tdnn"}))
    parser = argparse.ArgumentParser()
    parser.add_argument("--ssps_num_clusters", type=int, default=25000)
    with pytest.raises(SystemExit, match="unknown settings \\['encoder'\\]"):
        apply_recipe(parser, tmp_path / "r.json", strict=True)
    apply_recipe(parser, tmp_path / "r.json", strict=False)  # ssps-fill: the settings it has, the rest skipped
    assert parser.parse_args([]).ssps_num_clusters == 7 and parser.parse_args(["--ssps_num_clusters", "3"]).ssps_num_clusters == 3

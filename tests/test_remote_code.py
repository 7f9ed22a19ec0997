"""A saved folder loads as Hub remote code in a fresh interpreter that cannot import our
packages: only torch, numpy and transformers (plus the copied files) are available."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from modeling_ssps import SSPSConfig, SSPSFeatureExtractor, SSPSModel

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_ssps", "ssps_trainers", "scripts"}:
                raise ModuleNotFoundError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    sys.path = [p for p in sys.path if p not in ("", REPO)]

    import numpy as np
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    try:
        import modeling_ssps  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the package must not be importable here")

    folder = sys.argv[1]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    waves = np.load(folder + "/waves.npy", allow_pickle=False)
    batch = extractor([waves[0], waves[1, :12000]], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        embeddings = model(**batch).embeddings
    print(json.dumps({
        "model_class": type(model).__name__,
        "model_module": type(model).__module__,
        "config_class": type(config).__name__,
        "extractor_class": type(extractor).__name__,
        "embeddings": embeddings.tolist(),
    }))
    """
)


def test_remote_code_in_a_subprocess_without_the_package(tmp_path, tiny_ecapa_kwargs, rng) -> None:
    folder = tmp_path / "exported"
    model = SSPSModel(SSPSConfig(**tiny_ecapa_kwargs)).eval()
    model.save_pretrained(folder)
    SSPSFeatureExtractor().save_pretrained(folder)
    waves = rng.standard_normal((2, 16000)).astype(np.float32) * 0.1
    np.save(folder / "waves.npy", waves)
    extractor = SSPSFeatureExtractor()
    batch = extractor([waves[0], waves[1, :12000]], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).embeddings

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    code = CHILD.replace("REPO)", repr(str(REPO_ROOT)) + ")")
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model_class"] == "SSPSModel"
    assert report["model_module"].startswith("transformers_modules.")
    assert report["config_class"] == "SSPSConfig"
    assert report["extractor_class"] == "SSPSFeatureExtractor"
    torch.testing.assert_close(torch.tensor(report["embeddings"]), expected, atol=1e-5, rtol=1e-5)


def test_a_training_checkpoint_loads_as_its_student_encoder(tmp_path, tiny_ecapa_kwargs, rng) -> None:
    """A checkpoint or averaged run folder (SSPSForPreTraining, with heads and a teacher) loads
    through AutoModel + remote code as the student encoder, where the package is absent."""
    from modeling_ssps import SSPSForPreTraining

    folder = tmp_path / "averaged"
    full = SSPSForPreTraining(SSPSConfig(**tiny_ecapa_kwargs, head_type="dino", has_teacher=True, dino_output_dim=32,
                                         dino_hidden_dim=16, dino_bottleneck_dim=8)).eval()  # fmt: skip
    full.save_pretrained(folder)
    SSPSFeatureExtractor().save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"] == "modeling_ssps.SSPSModel"
    waves = rng.standard_normal((2, 16000)).astype(np.float32) * 0.1
    np.save(folder / "waves.npy", waves)
    batch = SSPSFeatureExtractor()([waves[0], waves[1, :12000]], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = full.student(**batch).embeddings
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    code = CHILD.replace("REPO)", repr(str(REPO_ROOT)) + ")")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model_class"] == "SSPSModel"
    torch.testing.assert_close(torch.tensor(report["embeddings"]), expected, atol=1e-5, rtol=1e-5)

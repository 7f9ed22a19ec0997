"""Publishing: export_to_hub.py stages a complete repo; it loads from an offline Hub cache
layout with the package and, in a fresh interpreter without it, as remote code; the pipeline
and the Inference Endpoints handler work on it."""

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import synthetic_voice, wav_bytes
from huggingface_hub import ModelCard

from modeling_ssps import SSPSConfig, SSPSForPreTraining

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "me/dino-ssps"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[Path, SSPSForPreTraining]:
    root = tmp_path_factory.mktemp("export")
    model = SSPSForPreTraining(SSPSConfig(
        encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1), embedding_dim=16,
        head_type="dino", has_teacher=True, dino_output_dim=32, dino_hidden_dim=16, dino_bottleneck_dim=8, threshold=0.4,
    )).eval()  # fmt: skip
    with torch.no_grad():  # make the teacher differ from the student: export must pick the teacher
        for p in model.teacher.parameters():
            p.add_(0.01)
    model.save_pretrained(root / "averaged")
    report = {"lists": {"trials_cross_session.txt": {"eer_percent": 12.3456, "eer_threshold": 0.6789, "min_dcf_0.01": 0.61,
                                                     "min_dcf_0.01_threshold": 0.81, "min_dcf_0.05": 0.33, "min_dcf_0.05_threshold": 0.75,
                                                     "trials": 100, "targets": 10}}}  # fmt: skip
    (root / "report.json").write_text(json.dumps(report))
    result = subprocess.run(
        [sys.executable, "scripts/export_to_hub.py", "--model", str(root / "averaged"), "--card", "dino-ssps",
         "--eval_report", str(root / "report.json"), "--trials_name", "trials_cross_session.txt",
         "--dataset_name", "SSPS demo corpus, cross-session trials", "--output_dir", str(root / "staged"),
         "--repo_id", REPO_ID],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dry run" in result.stdout
    return root / "staged", model


def test_staged_repo_is_complete_and_safe(staged) -> None:
    folder, _ = staged
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "handler.py",
            "modeling_ssps.py", "configuration_ssps.py", "feature_extraction_ssps.py", "pipeline_ssps.py"} <= names  # fmt: skip
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["SSPSModel"] and config["auto_map"]["AutoModel"] == "modeling_ssps.SSPSModel"
    assert config["custom_pipelines"]["speaker-verification"]["pt"] == ["AutoModel"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "feature-extraction"
    assert card.data.to_dict()["inference"] is False and "inference widget cannot run" in card.text  # no broken widget
    assert card.data.datasets is None  # no unverified Hub dataset ids
    assert config["threshold_source"].startswith("eer of SSPS demo corpus")
    values = {(r.metric_type, (r.metric_args or {}).get("p_target")): r.metric_value for r in card.data.eval_results}
    assert values == {("eer", None): 12.346, ("min_dcf", 0.01): 0.61, ("min_dcf", 0.05): 0.33}
    assert card.data.eval_results[0].dataset_name == "SSPS demo corpus, cross-session trials"
    assert "ssps" in card.data.tags and "speaker-verification" in card.data.tags
    assert "12.346" in card.text and REPO_ID in card.text
    # the decision threshold is the report's EER threshold, and the card says where it comes from
    assert config["threshold"] == pytest.approx(0.6789)
    assert "0.6789" in card.text and "calibrated at the eer operating point" in card.text


def hub_cache(home: Path, folder: Path) -> None:
    """The local cache layout `from_pretrained(REPO_ID)` reads offline."""
    repo = home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_ssps", "ssps_trainers", "scripts"}:
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, Blocker())
    sys.path = [p for p in sys.path if p not in ("", REPO)]
    import torch
    from transformers import AutoModel, pipeline
    model = AutoModel.from_pretrained("me/dino-ssps", trust_remote_code=True).eval()
    verify = pipeline("speaker-verification", model="me/dino-ssps", trust_remote_code=True)
    with torch.no_grad():
        embedding = model(input_values=torch.ones(1, 16000) * 0.1).embeddings[0].tolist()
    print(json.dumps({"module": type(model).__module__, "pipeline": type(verify).__name__,
                      "pair": verify((sys.argv[1], sys.argv[2])), "embedding": embedding}))
    """
)


def test_offline_hub_cache_native_and_remote_code(staged, tmp_path, rng) -> None:
    folder, model = staged
    home = tmp_path / "home"
    hub_cache(home, folder)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    soundfile.write(a, synthetic_voice(rng, 16000), 16000)
    soundfile.write(b, synthetic_voice(rng, 24000, 200.0), 16000)
    with torch.no_grad():
        expected = model.teacher(input_values=torch.ones(1, 16000) * 0.1).embeddings[0]  # DINO: the teacher
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    code = CHILD.replace("REPO)", repr(str(REPO)) + ")")
    result = subprocess.run([sys.executable, "-c", code, str(a), str(b)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules.") and report["pipeline"] == "SpeakerVerificationPipeline"
    assert set(report["pair"]) == {"score", "same_speaker"} and isinstance(report["pair"]["same_speaker"], bool)
    torch.testing.assert_close(torch.tensor(report["embedding"]), expected, atol=1e-5, rtol=1e-5)

    # with the package imported: the native classes, no remote-code flag needed
    native = subprocess.run(
        [sys.executable, "-c", "import modeling_ssps, json; from transformers import AutoModel;"
         "m = AutoModel.from_pretrained('me/dino-ssps'); print(type(m).__module__)"],
        cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert native.returncode == 0, native.stderr[-3000:]
    assert native.stdout.strip().splitlines()[-1] == "modeling_ssps.modeling_ssps"


def test_endpoint_handler(staged, rng, monkeypatch) -> None:
    folder, _ = staged
    sys.path.insert(0, str(folder))
    try:
        from handler import EndpointHandler
    finally:
        sys.path.remove(str(folder))
    handler = EndpointHandler(str(folder))
    one = wav_bytes(synthetic_voice(rng, 16000))
    out = handler({"inputs": one})
    assert len(out["embedding"]) == 16 and abs(np.linalg.norm(out["embedding"]) - 1) < 1e-4
    pair = {"inputs": {"enroll": base64.b64encode(one).decode(), "test": base64.b64encode(one).decode()}, "parameters": {"threshold": 0.99}}
    result = handler(pair)
    assert result["score"] == pytest.approx(1.0, abs=1e-4) and result["same_speaker"] is True
    with pytest.raises(ValueError, match="raw audio bytes"):
        handler({"inputs": 3})


def test_pipeline_inputs(staged, rng, tmp_path) -> None:
    from transformers import pipeline

    folder, _ = staged
    verify = pipeline("speaker-verification", model=str(folder), trust_remote_code=True)
    wave = synthetic_voice(rng, 16000)
    path = tmp_path / "w.wav"
    soundfile.write(path, wave, 16000)
    from_path = verify(str(path))["embedding"]
    from_array = verify(wave)["embedding"]
    from_bytes = verify(path.read_bytes())["embedding"]
    np.testing.assert_allclose(from_path, from_array, atol=1e-4)
    np.testing.assert_allclose(from_bytes, from_array, atol=1e-4)
    resampled = verify({"array": wave[::2], "sampling_rate": 8000})["embedding"]
    assert len(resampled) == 16
    batch = verify([(wave, wave), {"enroll": wave, "test": wave}, wave])
    assert batch[0]["score"] == pytest.approx(1.0, abs=1e-4) and batch[1]["same_speaker"] is True
    assert "embedding" in batch[2]
    with pytest.raises(ValueError, match="2 audios"):
        verify((wave, wave, wave))


def test_export_never_deletes_what_it_did_not_create(staged, tmp_path) -> None:
    """--output_dir pointed at a run folder (checkpoints), at the input model, or at a non-empty
    folder without --overwrite: refused, and every file there is still in place."""
    folder, _ = staged
    root = folder.parent
    run = tmp_path / "run"
    (run / "checkpoint-10").mkdir(parents=True)
    (run / "checkpoint-10" / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    common = ["scripts/export_to_hub.py", "--model", str(root / "averaged"), "--card", "dino-ssps", "--eval_report", str(root / "report.json"),
              "--trials_name", "trials_cross_session.txt", "--dataset_name", "demo"]  # fmt: skip
    for target, extra, message in ((run, ["--overwrite"], "checkpoints"), (root / "averaged", ["--overwrite"], "overlaps the input"),
                                   (tmp_path / "notes", [], "not empty")):  # fmt: skip
        result = subprocess.run([sys.executable, *common, "--output_dir", str(target), *extra], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert (run / "checkpoint-10" / "model.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    assert (root / "averaged" / "model.safetensors").exists()
    # with --overwrite a previous export is replaced as a whole
    again = subprocess.run([sys.executable, *common, "--output_dir", str(folder), "--overwrite", "--repo_id", REPO_ID], cwd=REPO,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert (folder / "model.safetensors").exists() and not folder.with_name(folder.name + ".partial").exists()

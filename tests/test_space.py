"""The Gradio Space, tested as a person would use it: start it on localhost, open it in headless
Chromium (Debian `chromium` + Playwright's `playwright-core`), upload two recordings, press
Compare and read the score. The screenshot is kept under outputs/test-artifacts/."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from transformers import pipeline

from modeling_ssps import SSPSConfig, SSPSFeatureExtractor, SSPSModel

REPO = Path(__file__).resolve().parents[1]
BROWSER = REPO / "tests" / "browser"
ARTIFACTS = REPO / "outputs" / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_space_in_headless_chromium(tmp_path) -> None:
    pytest.importorskip("gradio")
    chromium = shutil.which("chromium")
    if chromium is None or not (BROWSER / "node_modules" / "playwright-core").exists():
        pytest.fail("the browser test needs Debian chromium and `npm install --prefix tests/browser` (.ci/run does both)")
    model = SSPSModel(SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1), embedding_dim=16))
    # saved as export_to_hub.py does: weights, extractor, code and the pipeline definition
    pipeline("speaker-verification", model=model.eval(), feature_extractor=SSPSFeatureExtractor()).save_pretrained(tmp_path / "model")
    port = free_port()
    env = dict(os.environ, SSPS_MODEL=str(tmp_path / "model"), PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", HF_HOME=str(tmp_path / "home"))  # fmt: skip
    server = subprocess.Popen([sys.executable, str(REPO / "spaces" / "speaker-verification" / "app.py")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"the Space exited: {server.stdout.read()[-3000:]}")
                time.sleep(0.5)
        samples = sorted((REPO / "spaces" / "speaker-verification" / "samples").glob("*.wav"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "space.png"
        result = subprocess.run(["node", str(BROWSER / "drive.mjs"), url, str(samples[0]), str(samples[1]), str(screenshot)],
                                cwd=BROWSER, capture_output=True, text=True, timeout=300, env=dict(os.environ, CHROMIUM=chromium))  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        shown = json.loads(result.stdout.strip().splitlines()[-1])
        assert -1.0 <= float(shown["score"]) <= 1.0
        assert shown["decision"].startswith(("Same speaker", "Different speakers"))
        assert screenshot.exists() and screenshot.stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_space_refuses_to_start_on_the_placeholder_model_id() -> None:
    pytest.importorskip("gradio")
    env = {k: v for k, v in os.environ.items() if k != "SSPS_MODEL"}
    result = subprocess.run([sys.executable, str(REPO / "spaces" / "speaker-verification" / "app.py")],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode != 0 and "placeholder" in result.stderr and "Traceback" not in result.stderr

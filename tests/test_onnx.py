"""ONNX export of the encoder, front-end included, with dynamic batch and length."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_ssps import LogMelFrontend, SSPSConfig, SSPSModel

REPO = Path(__file__).resolve().parents[1]


def test_export_friendly_frontend_matches_torch_stft(waveforms) -> None:
    frontend = LogMelFrontend(n_mels=80, window="hann")
    batch = torch.zeros(3, 32000)
    lengths = torch.tensor([w.size for w in waveforms])
    for row, wave in enumerate(waveforms):
        batch[row, : wave.size] = torch.from_numpy(wave)
    reference = frontend(batch, lengths)
    frontend.export_friendly = True
    friendly = frontend(batch, lengths)
    # the DFT-as-convolution power differs from the FFT by fp32 rounding, which the log amplifies
    # only in near-silent bins: tiny on average, at most a few 1e-3 on normalised log-mels
    assert float((friendly - reference).abs().mean()) < 1e-4
    torch.testing.assert_close(friendly, reference, atol=5e-3, rtol=0)


@pytest.mark.parametrize("encoder", ["ecapa_tdnn", "fast_resnet34"])
def test_onnx_export_parity(encoder, tmp_path, tiny_ecapa_kwargs, tiny_resnet_kwargs) -> None:
    pytest.importorskip("onnxruntime")
    kwargs = tiny_ecapa_kwargs if encoder == "ecapa_tdnn" else tiny_resnet_kwargs
    model = SSPSModel(SSPSConfig(**kwargs))
    with torch.no_grad():  # trained-looking BatchNorm statistics
        model.train()
        model(input_values=torch.randn(4, 16000))
    model.save_pretrained(tmp_path / "model")
    result = subprocess.run(
        [sys.executable, "scripts/export_onnx.py", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "model.onnx"),
         "--tolerance", "1e-4"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "max |onnx - torch|" in result.stdout
    assert (tmp_path / "model.onnx").stat().st_size > 10_000

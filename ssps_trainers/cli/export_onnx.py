"""Export an SSPS encoder to ONNX, front-end included, with dynamic batch and length.

    python scripts/export_onnx.py --model outputs/demo/model --output outputs/demo/model/model.onnx

Inputs `input_values` (batch, samples) float32 16 kHz and `attention_mask` (batch, samples)
int64; output `embeddings` (batch, D), not normalised — as `SSPSModel`. The STFT is exported as
a strided convolution with a real DFT basis (`LogMelFrontend.export_friendly`). The export is
checked against PyTorch with onnxruntime on a padded batch (max abs difference printed;
failure above --tolerance).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from modeling_ssps import SSPSConfig, SSPSForPreTraining, SSPSModel

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--model", type=Path, required=True, help="SSPSModel (or SSPSForPreTraining: the student) folder.")
parser.add_argument("--output", type=Path, required=True)
parser.add_argument("--opset", type=int, default=18)
parser.add_argument("--tolerance", type=float, default=1e-4)
args = parser.parse_args()


class Exported(torch.nn.Module):
    """(input_values, attention_mask) -> embeddings, the ONNX graph's signature."""

    def __init__(self, encoder: SSPSModel) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_values=input_values, attention_mask=attention_mask).embeddings


config = SSPSConfig.from_pretrained(args.model)
if config.architectures and "SSPSForPreTraining" in config.architectures:
    encoder = SSPSForPreTraining.from_pretrained(args.model).student
else:
    encoder = SSPSModel.from_pretrained(args.model)
encoder.eval().frontend.export_friendly = True
module = Exported(encoder).eval()

example_values = torch.randn(2, 24000) * 0.1
example_mask = torch.ones(2, 24000, dtype=torch.long)
example_mask[1, 16000:] = 0
args.output.parent.mkdir(parents=True, exist_ok=True)
torch.onnx.export(
    module, (example_values, example_mask), str(args.output), input_names=["input_values", "attention_mask"],
    output_names=["embeddings"], opset_version=args.opset, dynamo=False,
    dynamic_axes={"input_values": {0: "batch", 1: "samples"}, "attention_mask": {0: "batch", 1: "samples"}, "embeddings": {0: "batch"}},
)  # fmt: skip

# parity on a different batch size and length, with padding
import onnxruntime  # noqa: E402

session = onnxruntime.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
values = torch.randn(3, 40000) * 0.1
mask = torch.ones(3, 40000, dtype=torch.long)
mask[1, 30000:] = 0
mask[2, 12000:] = 0
values = values * mask
with torch.no_grad():
    expected = module(values, mask).numpy()
got = session.run(["embeddings"], {"input_values": values.numpy(), "attention_mask": mask.numpy()})[0]
difference = float(np.abs(got - expected).max())
print(f"exported {args.output} ({args.output.stat().st_size / 1e6:.1f} MB); max |onnx - torch| = {difference:.2e}")
if difference > args.tolerance:
    raise SystemExit(f"ONNX output differs from PyTorch by {difference:.2e} > {args.tolerance}")

"""Speaker verification demo: two recordings -> cosine score and same/different decision.

Runs on Hugging Face Spaces (see README.md front matter) or locally:
    SSPS_MODEL=outputs/demo/model python spaces/speaker-verification/app.py
The model is loaded through transformers' remote code, so this Space needs no torchaudio and
not our package: only transformers, torch, numpy and soundfile.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from transformers import pipeline

PLACEHOLDER = "ORG/simclr-ssps"
MODEL = os.environ.get("SSPS_MODEL", PLACEHOLDER)
HERE = Path(__file__).resolve().parent
if MODEL.startswith("ORG/"):
    raise SystemExit(
        f"SSPS_MODEL is {MODEL!r}, the placeholder of this Space: set it (a Space variable, or the environment) "
        "to a model folder or the Hub id of an exported SSPS encoder"
    )
verify = pipeline("speaker-verification", model=MODEL, trust_remote_code=True)
THRESHOLD = float(verify.model.config.threshold)


def compare(enroll: str | None, test: str | None) -> tuple[str, str]:
    if not enroll or not test:
        raise gr.Error("Upload or record two audio files.")
    result = verify((enroll, test))
    decision = "Same speaker" if result["same_speaker"] else "Different speakers"
    return f"{result['score']:.4f}", f"{decision} (threshold {THRESHOLD:.2f})"


samples = sorted(str(p) for p in (HERE / "samples").glob("*.wav"))
with gr.Blocks(title="SSPS speaker verification") as demo:
    gr.Markdown(
        "# Speaker verification with SSPS\n"
        f"Model: `{MODEL}`. Two recordings are compared with the cosine of their speaker embeddings."
    )
    with gr.Row():
        enroll = gr.Audio(type="filepath", label="Recording 1", elem_id="enroll")
        test = gr.Audio(type="filepath", label="Recording 2", elem_id="test")
    button = gr.Button("Compare", variant="primary", elem_id="compare")
    score = gr.Textbox(label="Cosine score", elem_id="score")
    decision = gr.Textbox(label="Decision", elem_id="decision")
    button.click(compare, inputs=[enroll, test], outputs=[score, decision])
    if len(samples) >= 3:
        gr.Examples([[samples[0], samples[1]], [samples[0], samples[2]]], inputs=[enroll, test])

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("HOST", "127.0.0.1"), server_port=int(os.environ.get("PORT", "7860")))

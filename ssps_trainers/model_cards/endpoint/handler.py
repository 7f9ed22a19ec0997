"""Inference Endpoints handler for an SSPS speaker encoder (copied into model repos by
scripts/export_to_hub.py).

Requests:
- raw audio bytes (any format soundfile or FFmpeg reads) as the body / `inputs`
  -> {"embedding": [...]} (L2-normalised)
- JSON {"inputs": {"enroll": <base64 audio>, "test": <base64 audio>}, "parameters": {"threshold": 0.5}}
  -> {"score": float, "same_speaker": bool}
"""

from __future__ import annotations

import base64
import sys
from typing import Any

import torch
from transformers import AutoFeatureExtractor, AutoModel
from transformers.dynamic_module_utils import get_class_from_dynamic_module


class EndpointHandler:
    def __init__(self, path: str = "") -> None:
        self.model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        self.extractor = AutoFeatureExtractor.from_pretrained(path, trust_remote_code=True)
        # the audio loader (decode, downmix, resample) ships with the repo's pipeline_ssps.py
        pipeline_class = get_class_from_dynamic_module("pipeline_ssps.SpeakerVerificationPipeline", path or ".")
        self.load_audio = sys.modules[pipeline_class.__module__].load_audio

    def _embed(self, audios: list[Any]) -> torch.Tensor:
        rate = self.extractor.sampling_rate
        waves = [self.load_audio(a, rate) for a in audios]
        batch = self.extractor(waves, sampling_rate=rate, return_tensors="pt")
        with torch.no_grad():
            return torch.nn.functional.normalize(self.model(**batch).embeddings, dim=-1)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        inputs = data.get("inputs", data)
        if isinstance(inputs, (bytes, bytearray)):
            return {"embedding": self._embed([bytes(inputs)])[0].tolist()}
        if isinstance(inputs, dict) and "enroll" in inputs and "test" in inputs:
            audios = [base64.b64decode(inputs["enroll"]), base64.b64decode(inputs["test"])]
            embeddings = self._embed(audios)
            score = float(embeddings[0] @ embeddings[1])
            threshold = float((data.get("parameters") or {}).get("threshold", self.model.config.threshold))
            return {"score": score, "same_speaker": score >= threshold}
        raise ValueError("send raw audio bytes, or {'inputs': {'enroll': base64, 'test': base64}}")

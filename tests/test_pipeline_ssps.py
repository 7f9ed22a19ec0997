"""The speaker-verification pipeline honours what it is told and refuses what it does not
understand: input rates, unknown keywords, thresholds, empty and silent audio."""

import logging

import numpy as np
import pytest
import torch
from conftest import synthetic_voice
from transformers import pipeline

from modeling_ssps import SSPSConfig, SSPSFeatureExtractor, SSPSModel
from modeling_ssps.pipeline_ssps import resample


@pytest.fixture(scope="module")
def verify():
    torch.manual_seed(0)
    model = SSPSModel(SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1),
                                 embedding_dim=16, threshold=0.3)).eval()  # fmt: skip
    return pipeline("speaker-verification", model=model, feature_extractor=SSPSFeatureExtractor())


def test_sampling_rate_keyword_is_honoured(verify) -> None:
    rng = np.random.default_rng(0)
    wave_8k = synthetic_voice(rng, 8000, 140.0)  # 1 s at 8 kHz
    told = np.asarray(verify(wave_8k, sampling_rate=8000)["embedding"])
    as_dict = np.asarray(verify({"raw": wave_8k, "sampling_rate": 8000})["embedding"])
    upsampled = np.asarray(verify(resample(wave_8k, 8000, 16000))["embedding"])
    untold = np.asarray(verify(wave_8k)["embedding"])  # read as 16 kHz: half the length, another voice
    np.testing.assert_allclose(told, upsampled, atol=1e-5)
    np.testing.assert_allclose(as_dict, upsampled, atol=1e-5)
    assert np.abs(untold - told).max() > 1e-3


def test_unknown_keywords_and_bad_thresholds_are_refused(verify) -> None:
    wave = synthetic_voice(np.random.default_rng(1), 16000)
    with pytest.raises(TypeError, match="thresold"):
        verify((wave, wave), thresold=0.5)
    for bad in (float("nan"), 2.0, "0.5", True):
        with pytest.raises(ValueError, match="threshold"):
            verify((wave, wave), threshold=bad)
    with pytest.raises(ValueError, match="sampling_rate"):
        verify(wave, sampling_rate=0)
    assert verify((wave, wave), threshold=0.99)["same_speaker"] is True  # identical audio scores 1


@pytest.mark.parametrize("rate", [None, 8000, 44100])
def test_empty_audio_is_a_clear_error_at_any_rate(verify, rate) -> None:
    with pytest.raises(ValueError, match="empty audio"):
        verify(np.zeros(0, dtype=np.float32), **({"sampling_rate": rate} if rate else {}))


def test_silent_audio_warns(verify, caplog) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    with caplog.at_level(logging.WARNING):
        verify(np.zeros(16000, dtype=np.float32))
    assert "silent audio" in caplog.text

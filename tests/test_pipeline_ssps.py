"""The speaker-verification pipeline honours what it is told and refuses what it does not
understand: input rates, unknown keywords, thresholds, empty and silent audio."""

import logging

import numpy as np
import pytest
import torch
from conftest import synthetic_voice
from transformers import pipeline

from modeling_ssps import SSPSConfig, SSPSFeatureExtractor, SSPSModel
from modeling_ssps.pipeline_ssps import energy_vad, resample, windows


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


def test_windows_cover_the_audio_and_end_at_its_end() -> None:
    assert windows(10, None, 0) == [(0, 10)] and windows(3, 4, 2) == [(0, 3)]
    assert windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert windows(11, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]
    assert windows(12, 4, 0) == [(0, 4), (4, 8), (8, 12)]


def embed(verify, wave: np.ndarray) -> np.ndarray:
    """The model's unit-norm embedding of one waveform, without the pipeline."""
    batch = verify.feature_extractor([wave], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return torch.nn.functional.normalize(verify.model(**batch).embeddings, dim=-1)[0].numpy()


def test_batches_equal_one_by_one(verify) -> None:
    rng = np.random.default_rng(2)
    waves = [synthetic_voice(rng, n, f0) for n, f0 in ((16000, 120.0), (23000, 180.0), (9000, 220.0))]
    inputs = [(waves[0], waves[1]), waves[2], {"enroll": waves[2], "test": waves[0]}, (waves[1], waves[1])]
    one = [verify(x) for x in inputs]
    batched = verify(inputs, batch_size=3)
    for a, b in zip(one, batched):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float), atol=1e-5)


def test_sliding_window_is_the_length_weighted_mean_of_windows(verify) -> None:
    wave = synthetic_voice(np.random.default_rng(3), 16000 * 5 + 3000, 150.0)  # 5.19 s
    out = np.asarray(verify(wave, chunk_length_s=2.0, stride_length_s=0.5)["embedding"])
    spans = windows(wave.size, 32000, 8000)
    expected = sum((stop - start) * embed(verify, wave[start:stop]) for start, stop in spans)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-5)
    whole = np.asarray(verify(wave)["embedding"])
    np.testing.assert_allclose(whole, embed(verify, wave), atol=1e-5)  # no chunk_length_s: the whole recording
    with pytest.raises(ValueError, match="stride_length_s"):
        verify(wave, chunk_length_s=1.0, stride_length_s=1.0)


def test_crop_and_energy_vad(verify) -> None:
    rng = np.random.default_rng(4)
    voice = synthetic_voice(rng, 16000, 130.0)
    np.testing.assert_allclose(verify(voice, crop=(0.25, 0.75))["embedding"], embed(verify, voice[4000:12000]), atol=1e-5)
    with pytest.raises(ValueError, match="after the end"):
        verify(voice, crop=(2.0, 3.0))
    padded = np.concatenate([1e-5 * rng.standard_normal(16000), voice, 1e-5 * rng.standard_normal(16000)]).astype(np.float32)
    kept = energy_vad(padded, 16000)
    assert 16000 <= kept.size <= 16000 + 4 * 480  # the voice, plus at most a frame either side of each edge
    with_vad = np.asarray(verify(padded, vad=True)["embedding"])
    without = np.asarray(verify(padded)["embedding"])
    target = embed(verify, voice)
    assert with_vad @ target > without @ target


def test_resampling_is_a_library_resampler_close_to_torchaudio() -> None:
    import torchaudio.functional

    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    ours = resample(tone, 44100, 16000)
    theirs = torchaudio.functional.resample(torch.from_numpy(tone), 44100, 16000).numpy()
    assert ours.shape == theirs.shape == (16000,)
    assert np.abs(ours[200:-200] - theirs[200:-200]).max() < 2e-3


def test_uncalibrated_threshold_warns_and_the_package_needs_no_remote_code(tmp_path, caplog) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    torch.manual_seed(0)
    config = SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1), embedding_dim=16)
    SSPSModel(config).save_pretrained(tmp_path / "plain")
    SSPSFeatureExtractor().save_pretrained(tmp_path / "plain")
    wave = synthetic_voice(np.random.default_rng(5), 16000)
    verify = pipeline("speaker-verification", model=str(tmp_path / "plain"))  # no trust_remote_code: the package is imported
    with caplog.at_level(logging.WARNING):
        verify((wave, wave))
    assert "never measured" in caplog.text
    config.threshold, config.threshold_source = 0.4, "eer of test trials (t.txt)"
    SSPSModel(config).save_pretrained(tmp_path / "calibrated")
    SSPSFeatureExtractor().save_pretrained(tmp_path / "calibrated")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pipeline("speaker-verification", model=str(tmp_path / "calibrated"))((wave, wave))
    assert "never measured" not in caplog.text

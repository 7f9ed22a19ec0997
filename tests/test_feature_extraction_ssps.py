import numpy as np
import pytest
import torch

from modeling_ssps import SSPSFeatureExtractor


def test_pads_and_masks(waveforms) -> None:
    extractor = SSPSFeatureExtractor()
    batch = extractor(waveforms, sampling_rate=16000, return_tensors="pt")
    assert batch["input_values"].shape == (3, 32000)
    assert batch["input_values"].dtype == torch.float32
    assert batch["attention_mask"].sum(-1).tolist() == [32000, 20800, 9600]
    assert torch.all(batch["input_values"][2, 9600:] == 0)
    np.testing.assert_array_equal(batch["input_values"][1, :20800].numpy(), waveforms[1])


def test_single_waveform_list_of_floats_and_tensor(waveforms) -> None:
    extractor = SSPSFeatureExtractor()
    a = extractor(waveforms[0], sampling_rate=16000)["input_values"]
    b = extractor(waveforms[0].tolist(), sampling_rate=16000)["input_values"]
    c = extractor(torch.from_numpy(waveforms[0]), sampling_rate=16000)["input_values"]
    assert a.shape == (1, 32000)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c)


def test_no_normalisation(waveforms) -> None:
    batch = SSPSFeatureExtractor()(waveforms[0] * 3.0, sampling_rate=16000)
    np.testing.assert_allclose(batch["input_values"][0], waveforms[0] * 3.0)


def test_wrong_sampling_rate_is_refused(waveforms) -> None:
    with pytest.raises(ValueError, match="8000"):
        SSPSFeatureExtractor()(waveforms[0], sampling_rate=8000)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(100, dtype=np.float32), "fewer than min_samples"),
        (np.full(16000, np.nan, dtype=np.float32), "NaN"),
        (np.r_[np.zeros(15999), np.inf].astype(np.float32), "infinite"),
    ],
)
def test_bad_audio_is_refused(audio: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SSPSFeatureExtractor()([audio], sampling_rate=16000)


def test_multichannel_policies(waveforms) -> None:
    stereo = np.stack([waveforms[0], 0.5 * waveforms[0]])  # (channels, samples)
    with pytest.raises(ValueError, match="2 channels"):
        SSPSFeatureExtractor()([stereo], sampling_rate=16000)
    mean = SSPSFeatureExtractor(multichannel="mean")([stereo.T], sampling_rate=16000)
    np.testing.assert_allclose(mean["input_values"][0], 0.75 * waveforms[0], rtol=1e-6)
    first = SSPSFeatureExtractor()([stereo], sampling_rate=16000, multichannel="first")
    np.testing.assert_allclose(first["input_values"][0], waveforms[0])
    with pytest.raises(ValueError, match="multichannel"):
        SSPSFeatureExtractor(multichannel="left")


def test_save_and_load(tmp_path) -> None:
    extractor = SSPSFeatureExtractor(multichannel="mean", min_samples=800)
    extractor.save_pretrained(tmp_path)
    loaded = SSPSFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.multichannel == "mean" and loaded.min_samples == 800
    assert loaded.sampling_rate == 16000 and loaded.return_attention_mask


def test_padding_max_length_and_truncation_are_honoured() -> None:
    extractor = SSPSFeatureExtractor()
    waves = [np.ones(4000, dtype=np.float32), np.ones(2400, dtype=np.float32)]
    longest = extractor(waves, sampling_rate=16000)
    assert longest["input_values"].shape == (2, 4000) and longest["attention_mask"].sum(1).tolist() == [4000, 2400]
    fixed = extractor(waves, sampling_rate=16000, padding="max_length", max_length=4800)
    assert fixed["input_values"].shape == (2, 4800) and fixed["attention_mask"].sum(1).tolist() == [4000, 2400]
    cut = extractor(waves, sampling_rate=16000, padding="max_length", max_length=3200, truncation=True)
    assert cut["input_values"].shape == (2, 3200) and cut["attention_mask"].sum(1).tolist() == [3200, 2400]
    assert extractor(waves, sampling_rate=16000, pad_to_multiple_of=1024)["input_values"].shape == (2, 4096)
    with pytest.raises(ValueError, match="truncation=True"):
        extractor(waves, sampling_rate=16000, padding="max_length", max_length=3200)
    with pytest.raises(ValueError, match="equal length"):
        extractor(waves, sampling_rate=16000, padding=False)
    with pytest.raises(ValueError, match="need max_length"):
        extractor(waves, sampling_rate=16000, truncation=True)
    with pytest.raises(TypeError, match="paddding"):
        extractor(waves, sampling_rate=16000, paddding="max_length")

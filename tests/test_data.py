"""MultiViewCollator and WaveformAugment on generated audio."""

import io

import numpy as np
import pytest
import soundfile
import torch
from conftest import synthetic_voice, wav_bytes

from ssps_trainers.data import AudioDecodeError, MultiViewCollator, WaveformAugment


def rows(rng, lengths):
    return [{"audio": wav_bytes(synthetic_voice(rng, n)), "sample_index": i, "utt_id": f"u{i}.wav", "speaker_id": i % 2}
            for i, n in enumerate(lengths)]  # fmt: skip


def test_shapes_and_named_tensors(rng) -> None:
    collate = MultiViewCollator(num_views=2, crop_samples=8000, local_views=3, local_crop_samples=4000, reference_samples=16000)
    batch = collate(rows(rng, [20000, 5000, 12000]))  # 5000 < every crop: wrap-padded
    assert batch["input_values"].shape == (3, 2, 8000)
    assert batch["local_input_values"].shape == (3, 3, 4000)
    assert batch["reference_values"].shape == (3, 16000)
    assert batch["sample_index"].tolist() == [0, 1, 2]
    assert batch["speaker_id"].tolist() == [0, 1, 0]
    short = batch["reference_values"][1]
    torch.testing.assert_close(short[5000:10000], short[:5000])  # wrap-pad repeats the start


def test_crops_are_a_function_of_seed_epoch_and_sample(rng) -> None:
    data = rows(rng, [30000, 30000])
    collate = MultiViewCollator(crop_samples=8000, seed=3)
    a, b = collate(data), collate(data[::-1])
    torch.testing.assert_close(a["input_values"][0], b["input_values"][1])  # order-independent
    collate.epoch = 1
    assert not torch.equal(collate(data)["input_values"], a["input_values"])


def test_reference_crop_is_never_augmented(rng) -> None:
    collate = MultiViewCollator(crop_samples=8000, reference_samples=16000, augment=lambda w, r: w + 10.0)
    batch = collate(rows(rng, [20000]))
    assert batch["input_values"].min() > 5.0
    assert batch["reference_values"].abs().max() < 1.0


def test_bad_audio_names_the_utterance(rng) -> None:
    collate = MultiViewCollator(crop_samples=8000)
    corrupt = [{"audio": b"not audio at all", "sample_index": 0, "utt_id": "spk1/vid/corrupt.wav"}]
    with pytest.raises(AudioDecodeError, match="spk1/vid/corrupt.wav"):
        collate(corrupt)
    wrong_rate = [{"audio": wav_bytes(synthetic_voice(rng, 8000), 8000), "sample_index": 0, "utt_id": "u8k.wav"}]
    with pytest.raises(AudioDecodeError, match="u8k.wav: sample rate 8000"):
        collate(wrong_rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full(9000, np.nan, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    nan = [{"audio": buffer.getvalue(), "sample_index": 0, "utt_id": "nan.wav"}]
    with pytest.raises(AudioDecodeError, match="nan.wav"):
        collate(nan)


def make_sets(root, rng):
    for category, wave in (("noise", rng.standard_normal(32000)), ("music", np.sin(np.arange(32000) * 0.05))):
        (root / "musan" / category).mkdir(parents=True)
        soundfile.write(root / "musan" / category / "a.wav", (0.1 * wave).astype(np.float32), 16000)
    (root / "rirs").mkdir()
    rir = np.zeros(800, dtype=np.float32)
    rir[0] = 3.0  # a scaled impulse: unit-norm normalisation makes it the identity
    soundfile.write(root / "rirs" / "impulse.wav", rir, 16000)


def test_snr_and_identity_reverb(tmp_path, rng) -> None:
    make_sets(tmp_path, rng)
    augment = WaveformAugment(tmp_path / "musan", tmp_path / "rirs")
    wave = synthetic_voice(rng, 16000)
    np.testing.assert_allclose(augment.reverberate(wave, rng), wave, atol=1e-5)
    for seed in range(20):
        generator = np.random.default_rng(seed)
        noisy = augment.add_noise(wave, generator)
        added = noisy - wave
        snr = 10 * np.log10(np.mean(wave**2) + 1e-4) - 10 * np.log10(np.mean(added**2) + 1e-4)
        assert 0.0 - 1e-3 <= snr <= 15.0 + 1e-3  # noise 0-15 dB, music 5-15 dB


def test_missing_folders_warn_once_and_pass_through(tmp_path, rng) -> None:
    with pytest.warns(UserWarning, match="no MUSAN noise and no RIR"):
        augment = WaveformAugment(tmp_path / "nope", None)
    wave = synthetic_voice(rng, 4000)
    np.testing.assert_array_equal(augment(wave, rng), wave)
    with pytest.raises(ValueError, match="'reverb'"):
        WaveformAugment(strategy="reverb")


def test_strategy_all_draws_each_branch(tmp_path, rng) -> None:
    make_sets(tmp_path, rng)
    augment = WaveformAugment(tmp_path / "musan", tmp_path / "rirs", strategy="all")
    wave = synthetic_voice(rng, 4000)
    unchanged = sum(np.array_equal(augment(wave, np.random.default_rng(s)), wave) for s in range(200))
    assert 30 <= unchanged <= 70  # "none" is one of four branches


def test_prepared_audio_is_never_clipped_or_quantised_away(tmp_path) -> None:
    """Float audio above full scale is scaled, not clipped; very quiet audio is scaled up, not
    stored as zeros; silence is refused with its reason."""
    from ssps_trainers.corpus import UnreadableAudio, decode_file

    t = np.arange(16000) / 16000
    voice = np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    for peak in (3.0, 1e-4):
        path = tmp_path / f"peak-{peak}.wav"
        wave = (voice / np.abs(voice).max() * peak).astype(np.float32)
        soundfile.write(path, wave, 16000, subtype="FLOAT")
        decoded = decode_file(path)
        stored, _ = soundfile.read(io.BytesIO(decoded.flac), dtype="float32")
        assert np.abs(stored).max() > 0.4 and np.abs(stored).max() <= 1.0
        assert np.corrcoef(stored, wave)[0, 1] > 0.999  # the same waveform up to a gain
        assert decoded.warnings and "scaled" in decoded.warnings[-1]
    soundfile.write(tmp_path / "silent.wav", np.full(16000, 1e-8, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(UnreadableAudio, match="silence"):
        decode_file(tmp_path / "silent.wav")


def test_musan_chunks_as_the_reference_cuts_them(tmp_path) -> None:
    (tmp_path / "musan" / "noise").mkdir(parents=True)
    ramp = np.arange(20 * 16000, dtype=np.float32) / (20 * 16000)  # a sample's value says where it was
    soundfile.write(tmp_path / "musan" / "noise" / "long.wav", ramp, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "musan" / "noise" / "short.wav", ramp[: 8 * 16000], 16000, subtype="FLOAT")  # 8 s: no chunk
    soundfile.write(tmp_path / "musan" / "noise" / "tiny.wav", ramp[:16000], 16000, subtype="FLOAT")
    whole = WaveformAugment(musan_dir=tmp_path / "musan", strategy="reverb+noise")
    chunked = WaveformAugment(musan_dir=tmp_path / "musan", strategy="reverb+noise", musan_chunk_seconds=8.0)
    long = tmp_path / "musan" / "noise" / "long.wav"
    # range(0, 20 s - 8 s, 8 s): chunks at 0 and 8 s; the tail (16-20 s) and the 8 s and 1 s files give none
    assert chunked.noise_chunks == {"noise": [(long, 0), (long, 8 * 16000)]}
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(20):
        segment = chunked.draw_noise("noise", rng)
        start = int(round(float(segment[0]) * 20 * 16000))
        np.testing.assert_array_equal(segment, ramp[start : start + 8 * 16000])
        starts.add(start)
    assert starts == {0, 8 * 16000}  # both chunks drawn, nothing else
    assert {whole.draw_noise("noise", rng).shape[0] for _ in range(30)} == {20 * 16000, 8 * 16000, 16000}  # whole files

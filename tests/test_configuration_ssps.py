import json

import pytest

from modeling_ssps import SSPSConfig


def test_defaults_are_the_paper_ecapa() -> None:
    config = SSPSConfig()
    assert config.model_type == "ssps"
    assert config.encoder_type == "ecapa_tdnn"
    assert config.ecapa_channels == (1024, 1024, 1024, 1024, 3072)
    assert (config.n_mels, config.window, config.win_length, config.hop_length) == (
        40, "hamming", 400, 160,
    )
    assert (config.n_fft, config.log_offset, config.embedding_dim) == (512, 1e-6, 512)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("encoder_type", "ecapa"),
        ("window", "hanning"),
        ("head_type", "byol"),
        ("n_mels", 0),
        ("hop_length", -160),
        ("win_length", 1024),
        ("f_max", 9000.0),
        ("ecapa_channels", (512, 512, 512, 1536)),
        ("ecapa_channels", (512, 256, 512, 512, 1536)),
        ("ecapa_channels", (100, 100, 100, 100, 300)),
        ("ecapa_kernel_sizes", (5, 3, 4, 3, 1)),
        ("resnet_layers", (3, 4, 6)),
        ("threshold", 1.5),
    ],
)
def test_invalid_values_raise_and_quote_the_value(field: str, value: object) -> None:
    with pytest.raises(ValueError) as error:
        SSPSConfig(**{field: value})
    assert field in str(error.value)
    assert repr(value) in str(error.value) or str(value) in str(error.value)


def test_resnet_needs_mels_divisible_by_8() -> None:
    with pytest.raises(ValueError, match="n_mels"):
        SSPSConfig(encoder_type="fast_resnet34", n_mels=36)


def test_round_trip_through_json(tmp_path) -> None:
    config = SSPSConfig(
        encoder_type="fast_resnet34", n_mels=80, window="hann", threshold=0.42, head_type="dino"
    )
    config.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "ssps" and raw["n_mels"] == 80
    loaded = SSPSConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.resnet_layers == (3, 4, 6, 3)


def test_malformed_config_file_is_rejected_on_load(tmp_path) -> None:
    SSPSConfig().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["encoder_type"] = "transformer"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="transformer"):
        SSPSConfig.from_pretrained(tmp_path)

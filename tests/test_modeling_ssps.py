"""Shapes, parameter counts, masked = unpadded, save/load equality, Auto classes, front-end parity."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from modeling_ssps import (
    LogMelFrontend,
    SSPSConfig,
    SSPSFeatureExtractor,
    SSPSForPreTraining,
    SSPSModel,
    count_parameters,
)

ECAPA_512 = (512, 512, 512, 512, 1536)


@pytest.mark.parametrize(
    ("kwargs", "low", "high"),
    [
        ({"encoder_type": "ecapa_tdnn"}, 22.0e6, 23.0e6),  # docs/method.md §12: about 22.5M
        ({"encoder_type": "ecapa_tdnn", "ecapa_channels": ECAPA_512}, 6.5e6, 7.5e6),
        ({"encoder_type": "fast_resnet34"}, 1.3e6, 1.5e6),  # docs/method.md §12: about 1.4M
    ],
)
def test_parameter_counts_and_output_shape(kwargs, low, high) -> None:
    model = SSPSModel(SSPSConfig(**kwargs)).eval()
    assert low < count_parameters(model) < high
    assert count_parameters(model) == count_parameters(model.encoder)  # front-end: no weights
    with torch.no_grad():
        out = model(input_values=torch.randn(2, 16000))
    assert out.embeddings.shape == (2, 512)
    assert torch.isfinite(out.embeddings).all()


@pytest.mark.parametrize("encoder", ["ecapa_tdnn", "fast_resnet34"])
@pytest.mark.parametrize("size", ["tiny", "paper"])
def test_padded_batch_equals_one_by_one(encoder, size, waveforms, request) -> None:
    if size == "tiny":
        fixture = "tiny_ecapa_kwargs" if encoder == "ecapa_tdnn" else "tiny_resnet_kwargs"
        kwargs = request.getfixturevalue(fixture)
    else:
        kwargs = {"encoder_type": encoder}
        if encoder == "ecapa_tdnn":
            kwargs["ecapa_channels"] = ECAPA_512
    torch.manual_seed(0)
    model = SSPSModel(SSPSConfig(**kwargs))
    # non-trivial BatchNorm statistics, so that eval mode is not an identity
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(input_values=torch.randn(4, 16000))
    model.eval()
    batch = SSPSFeatureExtractor()(waveforms, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        batched = model(**batch).embeddings
        for row, waveform in enumerate(waveforms):
            single = model(input_values=torch.from_numpy(waveform)[None]).embeddings[0]
            torch.testing.assert_close(batched[row], single, atol=1e-4, rtol=1e-4)


def test_mask_changes_the_result_when_padding_is_ignored(waveforms, tiny_ecapa_kwargs) -> None:
    """Guard against a mask that is silently dropped: without it, padding changes embeddings."""
    model = SSPSModel(SSPSConfig(**tiny_ecapa_kwargs)).eval()
    batch = SSPSFeatureExtractor()(waveforms, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        masked = model(**batch).embeddings[2]
        unmasked = model(input_values=batch["input_values"]).embeddings[2]
    assert not torch.allclose(masked, unmasked, atol=1e-3)


@pytest.mark.parametrize("encoder", ["ecapa_tdnn", "fast_resnet34"])
def test_training_step_backpropagates(encoder, tiny_ecapa_kwargs, tiny_resnet_kwargs) -> None:
    kwargs = tiny_ecapa_kwargs if encoder == "ecapa_tdnn" else tiny_resnet_kwargs
    model = SSPSModel(SSPSConfig(**kwargs)).train()
    embeddings = model(input_values=torch.randn(3, 8000)).embeddings
    embeddings.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("encoder", ["ecapa_tdnn", "fast_resnet34"])
def test_save_load_gives_identical_tensors(
    encoder, tmp_path, tiny_ecapa_kwargs, tiny_resnet_kwargs
) -> None:
    kwargs = tiny_ecapa_kwargs if encoder == "ecapa_tdnn" else tiny_resnet_kwargs
    model = SSPSModel(SSPSConfig(**kwargs))
    with torch.no_grad():  # move the BN statistics away from their initial values
        model.train()
        model(input_values=torch.randn(4, 8000))
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = SSPSModel.from_pretrained(tmp_path).eval()
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for key, tensor in state.items():
        assert torch.equal(tensor, loaded_state[key]), key
    x = torch.randn(2, 12000)
    with torch.no_grad():
        assert torch.equal(model(input_values=x).embeddings, loaded(input_values=x).embeddings)


def test_init_is_not_degenerate(tiny_resnet_kwargs) -> None:
    a = SSPSModel(SSPSConfig(**tiny_resnet_kwargs))
    b = SSPSModel(SSPSConfig(**tiny_resnet_kwargs))
    assert not torch.equal(a.encoder.attention_vector, b.encoder.attention_vector)
    assert a.encoder.blocks[0].norm1.weight.eq(1).all()


def test_auto_classes_with_the_package_imported(tmp_path, tiny_ecapa_kwargs) -> None:
    model = SSPSModel(SSPSConfig(**tiny_ecapa_kwargs)).eval()
    model.save_pretrained(tmp_path)
    SSPSFeatureExtractor().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("modeling_ssps.SSPSModel")
    assert config["auto_map"]["AutoConfig"].endswith("configuration_ssps.SSPSConfig")
    for name in ("modeling_ssps.py", "configuration_ssps.py"):
        assert (tmp_path / name).exists(), name
    assert isinstance(AutoConfig.from_pretrained(tmp_path), SSPSConfig)
    auto_model = AutoModel.from_pretrained(tmp_path)
    assert type(auto_model) is SSPSModel
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), SSPSFeatureExtractor)


def test_model_rejects_bad_shapes(tiny_resnet_kwargs) -> None:
    model = SSPSModel(SSPSConfig(**tiny_resnet_kwargs))
    with pytest.raises(ValueError, match="shape"):
        model(input_values=torch.randn(1, 2, 16000))
    with pytest.raises(ValueError, match="samples"):
        model(input_values=torch.randn(1, 100))


@pytest.mark.parametrize(("n_mels", "window"), [(40, "hamming"), (80, "hann")])
def test_frontend_matches_torchaudio(n_mels, window, waveforms) -> None:
    torchaudio = pytest.importorskip("torchaudio")
    frontend = LogMelFrontend(n_mels=n_mels, window=window)
    window_fn = torch.hamming_window if window == "hamming" else torch.hann_window
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0,
        n_mels=n_mels, window_fn=window_fn, power=2.0, center=True, pad_mode="reflect",
        norm=None, mel_scale="htk",
    )  # fmt: skip
    for waveform in waveforms:
        x = torch.from_numpy(waveform)[None]
        expected = torch.log(reference(x) + 1e-6)
        expected = torch.nn.functional.instance_norm(expected, eps=1e-5)
        torch.testing.assert_close(frontend(x), expected, atol=1e-4, rtol=1e-4)


def test_frontend_padding_does_not_change_statistics(waveforms) -> None:
    frontend = LogMelFrontend()
    padded = torch.zeros(1, 40000)
    padded[0, :9600] = torch.from_numpy(waveforms[2])
    masked = frontend(padded, torch.tensor([9600]))
    single = frontend(torch.from_numpy(waveforms[2])[None])
    frames = single.shape[-1]
    torch.testing.assert_close(masked[..., :frames], single, atol=1e-5, rtol=1e-5)
    assert torch.all(masked[..., frames:] == 0)
    np.testing.assert_equal(frames, 1 + 9600 // 160)


@pytest.mark.parametrize("head_type", ["projector", "dino"])
def test_forward_per_view_gives_batchnorm_the_reference_batches(head_type, tiny_resnet_kwargs) -> None:
    """forward_per_view: one BatchNorm batch per view (DINO: per crop group, head included)."""
    extra = {"dino_hidden_dim": 32, "dino_bottleneck_dim": 8, "dino_output_dim": 16, "has_teacher": True} if head_type == "dino" else {
        "projector_hidden_dim": 32, "projector_output_dim": 16}  # fmt: skip
    torch.manual_seed(0)
    views, local = 0.1 * torch.randn(3, 2, 8000), 0.1 * torch.randn(3, 2, 4000)
    outputs = {}
    for per_view in (False, True):
        torch.manual_seed(1)
        model = SSPSForPreTraining(SSPSConfig(head_type=head_type, forward_per_view=per_view, **tiny_resnet_kwargs, **extra)).train()
        outputs[per_view] = model(input_values=views, local_input_values=local if head_type == "dino" else None)
    reference = model  # forward_per_view=True, same weights: each batch by hand
    if head_type == "dino":
        batches = [views.transpose(0, 1).reshape(-1, 8000), local.transpose(0, 1).reshape(-1, 4000)]
    else:
        batches = [views[:, 0], views[:, 1]]
    embeddings = [reference.student(input_values=x).embeddings for x in batches]
    projections = [reference.project(e) for e in embeddings]
    torch.testing.assert_close(outputs[True].embeddings.flatten(0, 1), torch.cat(embeddings))
    torch.testing.assert_close(outputs[True].projections.flatten(0, 1), torch.cat(projections))
    # the joint forward is a different BatchNorm batch in train mode
    assert (outputs[True].projections - outputs[False].projections).abs().max() > 1e-4


def test_checkpoints_with_the_old_names_load_and_are_saved_with_the_new(tmp_path, tiny_resnet_kwargs) -> None:
    """Before the rename the student's weights were `ssps.*` and `has_teacher` was `momentum_branch`:
    such a folder loads into both classes with identical tensors, and saving it again writes today's
    names."""
    from safetensors.torch import load_file, save_file

    model = SSPSForPreTraining(SSPSConfig(**tiny_resnet_kwargs, head_type="projector", has_teacher=True,
                                          projector_hidden_dim=16, projector_output_dim=8)).eval()  # fmt: skip
    model.save_pretrained(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    weights = load_file(tmp_path / "new" / "model.safetensors")
    assert any(k.startswith("student.") for k in weights) and not any(k.startswith("ssps.") for k in weights)
    save_file({(f"ssps.{k[8:]}" if k.startswith("student.") else k): v for k, v in weights.items()}, old / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    config["momentum_branch"] = config.pop("has_teacher")
    (old / "config.json").write_text(json.dumps(config))

    loaded = SSPSForPreTraining.from_pretrained(old).eval()
    assert loaded.config.has_teacher and loaded.teacher is not None
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    encoder = SSPSModel.from_pretrained(old).eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        got, expected = encoder(input_values=x).embeddings, model.student(input_values=x).embeddings
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # equal weights; kernels may pick another order

    loaded.save_pretrained(tmp_path / "again")
    resaved = load_file(tmp_path / "again" / "model.safetensors")
    assert set(resaved) == set(weights)
    assert "momentum_branch" not in json.loads((tmp_path / "again" / "config.json").read_text())

"""The method adapters one by one (ssps_trainers/methods.py): which tensors are the positives,
which module gives the SSPS reference, the state each keeps and its update, what each adds to
the step (callbacks, optimiser, LR factor); eval_mode and the callbacks directly."""

import pytest
import torch
from test_ssl_trainer import tiny_config
from transformers import TrainerControl, TrainerState

from modeling_ssps import SSPSForPreTraining
from ssps_trainers import SSLTrainingArguments
from ssps_trainers.callbacks import FreezeCallback, MomentumCallback, PerParameterClipCallback
from ssps_trainers.methods import METHOD_CLASSES, build_method, eval_mode


def adapter(name: str, **overrides):
    args = SSLTrainingArguments(output_dir="unused", method=name, use_cpu=True, report_to=[], moco_queue_size=8,
                                swav_queue_size=8, dino_schedule_epochs=2, dino_warmup_epochs=1, **overrides)  # fmt: skip
    torch.manual_seed(0)
    model = SSPSForPreTraining(tiny_config(name)).eval()
    return build_method(args, model.config), model


def batch(name: str, b: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    inputs = {"input_values": 0.1 * torch.randn(b, 2, 8000)}
    if name == "dino":
        inputs["local_input_values"] = 0.1 * torch.randn(b, 2, 4000)
    return inputs


@pytest.mark.parametrize("name", sorted(METHOD_CLASSES))
def test_positives_have_the_declared_shape_and_source(name) -> None:
    method, model = adapter(name)
    inputs = batch(name)
    with torch.no_grad():
        out = model(input_values=inputs["input_values"], local_input_values=inputs.get("local_input_values"))
        teacher = method.teacher_forward(model, inputs, step=0)
        positives = method.positives(out, teacher)
    n_pos, dim = method.positive_shape()
    assert positives.shape == (n_pos, 3, dim)
    if name in ("simclr",):
        torch.testing.assert_close(positives[0], out.embeddings[1])  # Z2, the encoder output of view 2
    if name in ("moco", "dino"):  # the teacher's outputs
        assert teacher is not None and torch.equal(positives, teacher)
    else:
        assert teacher is None
    reference = method.reference_module(model)
    assert reference is (model.teacher if name == "dino" else model.student)  # DINO: the teacher encoder


@pytest.mark.parametrize("name", sorted(METHOD_CLASSES))
def test_state_update_uses_the_positives_it_is_given(name) -> None:
    method, model = adapter(name)
    state = method.make_state()
    inputs = batch(name)
    with torch.no_grad():
        out = model(input_values=inputs["input_values"], local_input_values=inputs.get("local_input_values"))
        positives = method.positives(out, method.teacher_forward(model, inputs, step=0))
    loss, _ = method.loss(model, out, positives, state, epoch=0)
    assert torch.isfinite(loss)
    before = {k: v.clone() for k, v in state.state_dict().items()}
    substituted = positives + 1.0  # what SSPS would hand over
    method.update_state(state, out, substituted, epoch=0)
    after = state.state_dict()
    if name == "moco":  # the substituted keys are enqueued
        values = state["moco"].values
        assert any(torch.allclose(values[v, i], substituted[v, j]) for v in range(2) for i in range(values.shape[1]) for j in range(3))
    if name == "dino":  # the centre moves towards the mean of what the loss used
        centre = state["dino"].center
        m = method.args.dino_center_momentum
        expected = m * before["dino.center"] + (1 - m) * substituted.flatten(0, 1).mean(0)
        torch.testing.assert_close(centre.reshape(expected.shape), expected)
    if name == "swav":  # the feature queue takes the original Z1, Z2, never what SSPS substituted
        queue = state["swav"].values
        assert any(torch.allclose(queue[v, i], out.projections[v, 0]) for v in range(2) for i in range(queue.shape[1]))
        assert not any(torch.allclose(queue[0, i], substituted[0, 0]) for i in range(queue.shape[1]))
    if name in ("simclr", "vicreg"):
        assert after == {} and before == {}


@pytest.mark.parametrize("name", sorted(METHOD_CLASSES))
def test_what_each_method_adds_to_the_step(name) -> None:
    method, model = adapter(name, learning_rate=0.2 if name == "dino" else 1e-3)
    kinds = sorted(type(c).__name__ for c in method.callbacks(steps_per_epoch=10))
    expected = {"simclr": [], "vicreg": [], "moco": ["MomentumCallback"],
                "swav": ["FreezeCallback", "NormalizePrototypesCallback"],
                "dino": ["FreezeCallback", "MomentumCallback", "PerParameterClipCallback"]}  # fmt: skip
    assert kinds == expected[name]
    optimiser = method.optimizer([p for p in model.parameters() if p.requires_grad])
    assert isinstance(optimiser, torch.optim.SGD if name == "dino" else torch.optim.Adam)
    factor = method.lr_factor(steps_per_epoch=10)
    if name == "dino":  # linear warm-up over dino_warmup_epochs (1 epoch = 10 steps)
        assert factor(0) < factor(5) < factor(9) <= 1.0
    else:  # step decay: x0.95 every 5 epochs
        assert factor(0) == 1.0 and factor(49) == 1.0 and factor(50) == pytest.approx(0.95)


def test_eval_mode_restores_every_submodule_mode() -> None:
    model = SSPSForPreTraining(tiny_config("dino")).train()
    model.teacher.eval()  # a mixed state, restored exactly
    modes = {name: m.training for name, m in model.named_modules()}
    with eval_mode(model.student):
        assert not any(m.training for m in model.student.modules())
        assert model.head.training  # only the given module
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_callbacks_directly() -> None:
    model = SSPSForPreTraining(tiny_config("dino"))
    state, control = TrainerState(), TrainerControl()
    # momentum: t <- m t + (1 - m) s at the step's momentum
    teacher_before = [p.detach().clone() for p in model.teacher_parameters()]
    with torch.no_grad():
        for p in model.student_parameters():
            p.add_(1.0)
    state.global_step = 3
    MomentumCallback(lambda step: 0.25 if step == 3 else 0.0).on_optimizer_step(None, state, control, model=model)
    for t0, t, s in zip(teacher_before, model.teacher_parameters(), model.student_parameters(), strict=True):
        torch.testing.assert_close(t, 0.25 * t0 + 0.75 * s)
    # freeze: the last head layer gets no update during the first epoch only
    last = model.head.last_layer  # a parameter (the weight-normalised direction)
    last.grad = torch.ones_like(last)
    freeze = FreezeCallback(lambda m: [m.head.last_layer], epochs=1, steps_per_epoch=10)
    state.global_step = 9
    freeze.on_pre_optimizer_step(None, state, control, model=model)
    assert last.grad is None
    last.grad = torch.ones_like(last)
    state.global_step = 10
    freeze.on_pre_optimizer_step(None, state, control, model=model)
    assert last.grad is not None
    # per-parameter clipping: each gradient's norm at most max_norm
    for p in model.parameters():
        p.grad = 10 * torch.ones_like(p)
    PerParameterClipCallback(3.0).on_pre_optimizer_step(None, state, control, model=model)
    assert max(float(p.grad.norm()) for p in model.parameters() if p.grad is not None) <= 3.0 + 1e-4


def test_moco_keys_per_view_with_the_reference_batches() -> None:
    method, model = adapter("moco")
    model.train()
    model.config.forward_per_view = True
    views = batch("moco")["input_values"]
    keys = method.teacher_forward(model, {"input_values": views}, step=0)
    for v in range(2):  # each view its own BatchNorm batch
        with torch.no_grad():
            expected = torch.nn.functional.normalize(model.teacher(input_values=views[:, v]).embeddings, dim=-1)
        torch.testing.assert_close(keys[v], expected)

"""The five frameworks train through the Trainer on CPU with SSPS active, and resume exactly."""

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import TrainerControl, TrainerState

from modeling_ssps import SSPSConfig, SSPSForPreTraining
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments
from ssps_trainers.callbacks import MomentumCallback
from ssps_trainers.methods import METHOD_CLASSES

HEADS = {name: method.head_type for name, method in METHOD_CLASSES.items()}  # the registry's


def tiny_config(method: str) -> SSPSConfig:
    return SSPSConfig(
        encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1),
        embedding_dim=32, head_type=HEADS[method], has_teacher=METHOD_CLASSES[method].needs_teacher,
        projector_hidden_dim=32, projector_output_dim=16, dino_hidden_dim=32,
        dino_bottleneck_dim=8, dino_output_dim=64, swav_num_prototypes=10,
    )  # fmt: skip


def make_trainer(
    method: str, rows, output_dir: Path, ssps: bool = True, eval_dataset=None, eval_trials=None, **overrides
) -> SSLTrainer:
    settings = dict(
        output_dir=str(output_dir), method=method, per_device_train_batch_size=4,
        num_train_epochs=2, logging_steps=1, save_steps=1, report_to=[], use_cpu=True,
        disable_tqdm=True, moco_queue_size=16, swav_queue_size=8, swav_queue_start_epoch=1,
        dino_warmup_epochs=1, dino_schedule_epochs=2, ssps=ssps, ssps_start_epoch=1,
        ssps_num_clusters=3, ssps_queue_size=6, learning_rate=0.05 if method == "dino" else 1e-3,
        dataloader_num_workers=0, save_total_limit=10,
    )  # fmt: skip
    settings.update(overrides)
    args = SSLTrainingArguments(**settings)
    dino = method == "dino"
    collator = MultiViewCollator(
        num_views=2, crop_samples=12000 if dino else 8000, local_views=2 if dino else 0,
        local_crop_samples=6000, reference_samples=12000 if ssps else None, seed=args.seed,
    )  # fmt: skip
    torch.manual_seed(0)
    return SSLTrainer(
        model=SSPSForPreTraining(tiny_config(method)), args=args,
        train_dataset=Dataset.from_dict(rows), data_collator=collator,
        eval_dataset=eval_dataset, eval_trials=eval_trials,
    )  # fmt: skip


def losses(trainer: SSLTrainer) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


@pytest.mark.parametrize("method", list(HEADS))
def test_trains_with_ssps_active(method, tiny_wav_rows, tmp_path) -> None:
    trainer = make_trainer(method, tiny_wav_rows, tmp_path)
    # labels come from the dataset's speaker_id / video_id columns
    assert trainer.ssps.speaker_labels.tolist() == tiny_wav_rows["speaker_id"]
    model = trainer.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    history = losses(trainer)
    assert sorted(history) == [1, 2, 3, 4]  # 2 epochs x 2 steps; epoch 0 collects, 1 is active
    assert all(torch.isfinite(torch.tensor(v)) for v in history.values())
    active_logs = [h for h in trainer.state.log_history if "ssps/coverage" in h]
    assert [h["step"] for h in active_logs] == [3, 4]
    assert all(0.0 <= h["ssps/coverage"] <= 1.0 for h in active_logs)
    assert all(0.0 <= h["ssps/same_speaker_rate"] <= 1.0 for h in active_logs if h["ssps/coverage"] > 0)
    assert int(trainer.ssps.clustered_epoch) == 1
    assert bool(trainer.ssps.table.filled.all())  # every utterance pushed in epoch 0
    after = {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    changed = [k for k, v in after.items() if k.startswith("student.") and not torch.equal(v, before[k])]
    assert changed, "student did not change"
    if model.teacher is not None:
        moved = [
            k for k, v in after.items()
            if k.startswith("teacher.") and "running" not in k and not torch.equal(v, before[k])
        ]  # fmt: skip
        assert moved, "teacher did not move"
    state = load_file(str(tmp_path / "checkpoint-4" / "ssl_state.safetensors"))
    assert any(k.startswith("ssps.queue.") for k in state)
    assert not (tmp_path / "checkpoint-3" / "ssl_state.safetensors").exists()  # keep last only


def test_momentum_callback_applies_the_ema_rule() -> None:
    model = SSPSForPreTraining(tiny_config("moco"))
    with torch.no_grad():
        for p in model.student_parameters():
            p.add_(1.0)
    teacher = [p.clone() for p in model.teacher_parameters()]
    student = [p.clone() for p in model.student_parameters()]
    MomentumCallback(lambda step: 0.9).on_optimizer_step(None, TrainerState(), TrainerControl(), model=model)
    for t_before, s, t_after in zip(teacher, student, model.teacher_parameters()):
        torch.testing.assert_close(t_after, 0.9 * t_before + 0.1 * s)


@pytest.mark.parametrize("method", ["simclr", "moco", "dino"])
def test_resume_is_exact(method, tiny_wav_rows, tmp_path) -> None:
    full = make_trainer(method, tiny_wav_rows, tmp_path / "full")
    full.train()
    interrupted = make_trainer(method, tiny_wav_rows, tmp_path / "resumed", stop_at_epoch=1)
    interrupted.train()
    assert max(losses(interrupted)) == 2
    resumed = make_trainer(method, tiny_wav_rows, tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=True)
    reference, again = losses(full), losses(resumed)
    for step in (3, 4):
        assert again[step] == pytest.approx(reference[step], rel=1e-5), step
    a = load_file(str(tmp_path / "full" / "checkpoint-4" / "ssl_state.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint-4" / "ssl_state.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_resume_in_the_middle_of_an_ssps_epoch(tiny_wav_rows, tmp_path) -> None:
    """Checkpoint at step 3 (inside active epoch 1): the resumed run must not re-cluster (the
    table moved on since the epoch start) and must continue exactly."""
    full = make_trainer("simclr", tiny_wav_rows, tmp_path / "full")
    full.train()
    interrupted = make_trainer("simclr", tiny_wav_rows, tmp_path / "resumed", max_steps=3)
    interrupted.train()
    state = load_file(str(tmp_path / "resumed" / "checkpoint-3" / "ssl_state.safetensors"))
    assert int(state["ssps.clustered_epoch"]) == 1
    resumed = make_trainer("simclr", tiny_wav_rows, tmp_path / "resumed")
    refreshes = []
    original = resumed.ssps.refresh
    resumed.ssps.refresh = lambda epoch: refreshes.append(epoch) or original(epoch)
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-3"))
    assert refreshes == []  # clustered_epoch == 1 was restored
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], rel=1e-5)
    a = load_file(str(tmp_path / "full" / "checkpoint-4" / "ssl_state.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint-4" / "ssl_state.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_ssps_run_without_reference_crop_is_a_clear_error(tiny_wav_rows, tmp_path) -> None:
    trainer = make_trainer("simclr", tiny_wav_rows, tmp_path)
    trainer.data_collator.reference_samples = None
    with pytest.raises(ValueError, match="reference_values"):
        trainer.train()


def test_missing_ssl_state_is_refused(tiny_wav_rows, tmp_path) -> None:
    trainer = make_trainer("moco", tiny_wav_rows, tmp_path, ssps=False, stop_at_epoch=1)
    trainer.train()
    (tmp_path / "checkpoint-2" / "ssl_state.safetensors").unlink()
    again = make_trainer("moco", tiny_wav_rows, tmp_path, ssps=False)
    with pytest.raises(FileNotFoundError, match="ssl_state"):
        again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_missing_ssps_stores_advice_depends_on_who_saved_the_checkpoint(tiny_wav_rows, tmp_path) -> None:
    """Refilling the stores is right for a base checkpoint and wrong for an SSPS run's own
    checkpoint (it would silently change the run): the two errors say different things."""
    ssps_run = make_trainer("simclr", tiny_wav_rows, tmp_path / "ssps", ssps=True, ssps_start_epoch=1, stop_at_epoch=2)
    ssps_run.train()
    own = tmp_path / "ssps" / "checkpoint-4"
    (own / "ssl_state.safetensors").unlink()
    again = make_trainer("simclr", tiny_wav_rows, tmp_path / "ssps", ssps=True, ssps_start_epoch=1, num_train_epochs=3)
    with pytest.raises(FileNotFoundError, match="saved by an SSPS run") as error:
        again.load_ssl_state(own)
    assert "fill_ssps_queues" not in str(error.value)
    base = make_trainer("simclr", tiny_wav_rows, tmp_path / "base", ssps=False, stop_at_epoch=2)
    base.train()
    continued = make_trainer("simclr", tiny_wav_rows, tmp_path / "base", ssps=True, ssps_start_epoch=2, num_train_epochs=3)
    with pytest.raises(KeyError, match="fill_ssps_queues"):
        continued.load_ssl_state(tmp_path / "base" / "checkpoint-4")


@pytest.mark.slow
def test_filling_pass_then_ssps_continuation(tiny_wav_rows, tmp_path) -> None:
    """Published recipe: base SSL -> fill_ssps_queues.py on its checkpoint -> resume with SSPS."""
    import subprocess
    import sys

    base = make_trainer("simclr", tiny_wav_rows, tmp_path / "base", ssps=False, stop_at_epoch=1)
    base.train()
    checkpoint = tmp_path / "base" / "checkpoint-2"
    Dataset.from_dict(tiny_wav_rows).save_to_disk(str(tmp_path / "data"))
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(repo / "scripts" / "fill_ssps_queues.py"), "--checkpoint", str(checkpoint),
         "--dataset", str(tmp_path / "data"), "--method", "simclr", "--output_dir", str(tmp_path / "fill"),
         "--use_cpu", "--ssps", "--ssps_start_epoch", "1", "--ssps_num_clusters", "3",
         "--ssps_queue_size", "6", "--batch_size", "3", "--crop_seconds", "0.5",
         "--ssps_reference_seconds", "0.75", "--report_to", "none"],
        capture_output=True, text=True, timeout=300, cwd=repo,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_file(str(checkpoint / "ssl_state.safetensors"))
    assert bool(state["ssps.table.filled"].all())
    assert int((state["ssps.queue.slot_index"] >= 0).sum()) == 6
    assert "filling with clean views" in result.stdout
    # as the reference: the views of the pass augmented like training's (here: noise)
    import shutil

    import soundfile

    shutil.copytree(checkpoint, tmp_path / "augmented")
    (tmp_path / "musan" / "noise").mkdir(parents=True)
    soundfile.write(tmp_path / "musan" / "noise" / "n.wav", 0.3 * np.random.default_rng(0).standard_normal(16000), 16000)
    result = subprocess.run(
        [sys.executable, str(repo / "scripts" / "fill_ssps_queues.py"), "--checkpoint", str(tmp_path / "augmented"),
         "--dataset", str(tmp_path / "data"), "--method", "simclr", "--output_dir", str(tmp_path / "fill"),
         "--use_cpu", "--ssps", "--ssps_start_epoch", "1", "--ssps_num_clusters", "3",
         "--ssps_queue_size", "6", "--batch_size", "3", "--crop_seconds", "0.5",
         "--ssps_reference_seconds", "0.75", "--report_to", "none", "--musan_dir", str(tmp_path / "musan")],
        capture_output=True, text=True, timeout=300, cwd=repo,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    noisy = load_file(str(tmp_path / "augmented" / "ssl_state.safetensors"))
    assert torch.equal(noisy["ssps.queue.slot_index"], state["ssps.queue.slot_index"])  # same order
    assert not torch.allclose(noisy["ssps.queue.values"], state["ssps.queue.values"])  # other views
    continued = make_trainer("simclr", tiny_wav_rows, tmp_path / "base", ssps=True)
    continued.train(resume_from_checkpoint=str(checkpoint))
    active = [h["step"] for h in continued.state.log_history if "ssps/coverage" in h]
    assert active == [3, 4]


def test_evaluate_reports_eer_and_selects_best(tiny_wav_rows, tmp_path) -> None:
    rows = dict(tiny_wav_rows)
    rows["utt_id"] = [f"spk{s}/vid{v}/u{i}.wav" for i, (s, v) in enumerate(zip(rows["speaker_id"], rows["video_id"]))]
    trials = [
        (int(rows["speaker_id"][a] == rows["speaker_id"][b]), rows["utt_id"][a], rows["utt_id"][b])
        for a in range(8) for b in range(a + 1, 8)
    ]  # fmt: skip
    trainer = make_trainer(
        "simclr", tiny_wav_rows, tmp_path, ssps=False, eval_strategy="epoch",
        metric_for_best_model="eval_eer", greater_is_better=False, save_strategy="epoch",
        load_best_model_at_end=True, eval_dataset=Dataset.from_dict(rows), eval_trials=trials,
    )  # fmt: skip
    metrics = trainer.evaluate()
    assert set(metrics) == {"eval_eer", "eval_min_dcf", "eval_min_dcf_p05"}
    assert 0.0 <= metrics["eval_eer"] <= 1.0
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_eer" in h]
    assert len(evals) >= 2 and trainer.state.best_metric is not None
    trainer.eval_trials = [(1, "missing.wav", rows["utt_id"][0])]
    with pytest.raises(ValueError, match="missing.wav"):
        trainer.evaluate()


def test_bad_training_sets_fail_at_start_up(tiny_wav_rows, tmp_path) -> None:
    rows = {k: v for k, v in tiny_wav_rows.items() if k != "sample_index"}
    with pytest.raises(ValueError, match="sample_index"):
        make_trainer("simclr", rows, tmp_path)
    rows = {k: v for k, v in tiny_wav_rows.items() if k != "audio"}
    with pytest.raises(ValueError, match="audio"):
        make_trainer("simclr", rows, tmp_path)
    subset = dict(tiny_wav_rows)
    subset["sample_index"] = [i + 4 for i in subset["sample_index"]]  # as after select(range(4, 12))
    with pytest.raises(ValueError, match="renumber"):
        make_trainer("simclr", subset, tmp_path)


@pytest.mark.parametrize("name, value, controls", [("optim", "sgd", "--learning_rate"), ("lr_scheduler_type", "cosine", "--lr_decay_factor"),
                                                   ("warmup_steps", 100, "--dino_warmup_epochs"), ("adam_beta2", 0.98, "optimiser")])
def test_overridden_training_arguments_are_refused_not_ignored(tmp_path, name, value, controls) -> None:
    with pytest.raises(ValueError, match=rf"--{name} is not used by SSL training.*{controls}"):
        SSLTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **{name: value})
    SSLTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])  # defaults pass


@pytest.mark.parametrize("ssps", [False, True])
def test_reference_forward_in_train_mode_moves_the_teacher_batchnorm(ssps, tiny_wav_rows, tmp_path) -> None:
    """docs/differences.md row 2: as the reference runs its DINO teacher, also in a base run."""
    counts = {}
    for flag in (False, True):
        trainer = make_trainer("dino", tiny_wav_rows, tmp_path / f"{flag}", ssps=ssps, max_steps=1, ssps_reference_train_mode=flag)
        trainer.data_collator.reference_samples = 12000
        trainer.train()
        tracked = [b for name, b in trainer.model.teacher.named_buffers() if name.endswith("num_batches_tracked")]
        counts[flag] = int(tracked[0])
    assert counts == {False: 1, True: 2}  # one teacher forward (global crops), plus the reference crops


def test_resume_from_a_checkpoint_with_the_old_weight_names_is_exact(tiny_wav_rows, tmp_path) -> None:
    """A checkpoint saved before the student was renamed (`ssps.*`) resumes with its weights; the
    Trainer's own loader only logged the mismatch and went on from freshly initialised ones."""
    full = make_trainer("simclr", tiny_wav_rows, tmp_path / "full")
    full.train()
    interrupted = make_trainer("simclr", tiny_wav_rows, tmp_path / "resumed", stop_at_epoch=1)
    interrupted.train()
    weights = tmp_path / "resumed" / "checkpoint-2" / "model.safetensors"
    state = load_file(str(weights))
    assert any(k.startswith("student.") for k in state)
    save_file({"ssps." + k[len("student."):] if k.startswith("student.") else k: v for k, v in state.items()},
              str(weights), metadata={"format": "pt"})  # fmt: skip
    resumed = make_trainer("simclr", tiny_wav_rows, tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=True)
    assert losses(resumed)[3] == pytest.approx(losses(full)[3], rel=1e-5)


def test_resume_refuses_weights_of_another_model(tiny_wav_rows, tmp_path) -> None:
    interrupted = make_trainer("simclr", tiny_wav_rows, tmp_path, stop_at_epoch=1)
    interrupted.train()
    weights = tmp_path / "checkpoint-2" / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if "stem" not in k}, str(weights), metadata={"format": "pt"})
    resumed = make_trainer("simclr", tiny_wav_rows, tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint-2/model\.safetensors does not hold this model's weights"):
        resumed.train(resume_from_checkpoint=True)

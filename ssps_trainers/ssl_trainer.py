"""`SSLTrainer`: a `transformers.Trainer` for SimCLR, MoCo v2+, SwAV, VICReg and DINO with SSPS.

It owns the SSL state (MoCo queues, SwAV feature queue, DINO centre) and the `SSPS` module;
`compute_loss` runs one step in the order of docs/architecture.md §3.3; callbacks decide when the EMA, the
freezing, the clipping and the k-means refresh happen. Public Trainer methods are overridden
(`compute_loss`, `create_optimizer`, `create_scheduler`, `train`, `evaluate`, `log`), plus one
private pair, `_save_checkpoint` / `_get_output_dir`, only to make saves atomic, and
`_load_from_checkpoint`, only so that a resume loads every weight or refuses.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import Trainer
from transformers.utils import SAFE_WEIGHTS_NAME

from modeling_ssps import SSPSForPreTraining, rename_legacy_keys

from . import dist, seeds
from .audio_datasets import utterance_names
from .callbacks import (
    CollatorEpochCallback,
    SSPSEpochCallback,
    StopAtEpochCallback,
)
from .checkpoints import (
    SSL_STATE_NAME,
    STAGING_NAME,
    complete_checkpoints,
    fsync_dir,
    latest_complete_checkpoint,
    mark_complete,
    read_ssl_state,
    saved_with_ssps,
    section,
    strip_ssl_state,
    write_ssl_state,
)
from .evaluation import embed_rows, score_trials, verification_metrics
from .methods import build_method, eval_mode, gather_views
from .ssps import SSPS
from .training_args import SSLTrainingArguments


class SSLTrainer(Trainer):
    """Self-supervised speaker-encoder training, with SSPS when `args.ssps`.

    Example:

    ```python
    >>> trainer = SSLTrainer(model=SSPSForPreTraining(config), args=SSLTrainingArguments(...),
    ...                      train_dataset=dataset, data_collator=MultiViewCollator(...))
    >>> trainer.train()
    ```
    """

    loss_is_scaled_for_ga = False  # gradient accumulation is refused by the arguments

    def __init__(
        self,
        model: SSPSForPreTraining,
        args: SSLTrainingArguments,
        eval_trials: list[tuple[int, str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, SSLTrainingArguments):
            raise TypeError(f"SSLTrainer needs SSLTrainingArguments, got {type(args).__name__}")
        if args.n_gpu > 1:
            raise RuntimeError(
                f"{args.n_gpu} GPUs in one process (DataParallel) break queues and teachers: launch "
                "with `accelerate launch` or `torchrun`, one process per GPU"
            )
        self._check_dataset(kwargs.get("train_dataset"), args)
        self.method = build_method(args, model.config)
        if args.world_size > 1 and args.method != "moco" and args.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # MoCo uses shuffle-BN instead
        super().__init__(model=model, args=args, **kwargs)
        self.eval_trials = eval_trials
        self.steps_per_epoch = self._steps_per_epoch()
        self.ssl_state = self.method.make_state().to(args.device)
        self.ssps: SSPS | None = None
        if args.ssps:
            self.ssps = SSPS(
                num_samples=self._num_train_samples(),
                reference_dim=model.config.embedding_dim,
                positive_shape=self.method.positive_shape(),
                args=args.ssps_arguments(),
                device=args.device,
            )
            self._set_ssps_labels()
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._metric_counts: dict[str, int] = {}
        self._add_callbacks()

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_dataset(dataset: Any, args: SSLTrainingArguments) -> None:
        """Start-up checks, so that a bad dataset fails here with its reason instead of a
        KeyError inside a DataLoader worker or an IndexError in the SSPS stores mid-training."""
        if dataset is None:
            return
        features = getattr(dataset, "features", None)
        columns = list(features) if features is not None else getattr(dataset, "column_names", None)
        if columns is None:
            return  # a stream whose schema is unknown until read
        missing = [c for c in ("audio", "sample_index") if c not in columns]
        if missing:
            raise ValueError(
                f"the training set has no {missing} column(s) (it has {sorted(columns)}): build it with "
                "scripts/prepare_voxceleb.py, or add 'sample_index' = the row number"
            )
        if hasattr(dataset, "__len__") and args.ssps and len(dataset):
            size = args.num_train_samples or len(dataset)
            index = np.asarray(dataset["sample_index"])
            if index.min() < 0 or index.max() >= size:
                raise ValueError(
                    f"sample_index must be in [0, {size}) for a training set of {size} rows, got "
                    f"[{index.min()}, {index.max()}] (a select()ed or filtered subset keeps the old "
                    "indices: renumber them, e.g. dataset.map(lambda _, i: {'sample_index': i}, with_indices=True))"
                )

    def _num_train_samples(self) -> int:
        if self.args.num_train_samples is not None:
            return self.args.num_train_samples
        try:
            return len(self.train_dataset)  # type: ignore[arg-type]
        except TypeError as error:
            raise ValueError(
                "the training set has no length (streaming): pass --num_train_samples"
            ) from error

    def _set_ssps_labels(self) -> None:
        """Speaker / video diagnostics (docs/method.md §10) from the dataset's own columns, looked up once
        by `sample_index`; never from label files, never in the hot path."""
        assert self.ssps is not None
        dataset = self.train_dataset
        columns = getattr(dataset, "column_names", None) or []
        if "sample_index" not in columns or not hasattr(dataset, "__len__"):
            return  # streaming: a column read would iterate the (repeated) stream
        index = torch.as_tensor(np.asarray(list(dataset["sample_index"])), dtype=torch.long)
        labels: dict[str, torch.Tensor | None] = {"speaker_id": None, "video_id": None}
        for name in labels:
            if name in columns:
                _, codes = np.unique(np.asarray(list(dataset[name])), return_inverse=True)
                table = torch.full((self.ssps.num_samples,), -1, dtype=torch.long)
                table[index] = torch.as_tensor(codes, dtype=torch.long)
                labels[name] = table
        self.ssps.set_labels(labels["speaker_id"], labels["video_id"])

    def _steps_per_epoch(self) -> int:
        global_batch = self.args.per_device_train_batch_size * self.args.world_size
        steps = self._num_train_samples() // global_batch
        if steps < 1:
            raise ValueError(
                f"{self._num_train_samples()} training samples cannot fill one global batch of "
                f"{global_batch}"
            )
        return steps

    def _add_callbacks(self) -> None:
        a, spe = self.args, self.steps_per_epoch
        for callback in self.method.callbacks(spe):  # the method's schedules (momentum, freezing, clipping)
            self.add_callback(callback)
        if self.ssps is not None:
            self.add_callback(SSPSEpochCallback(self.ssps, spe, self._log_now))
        if self.data_collator is not None and hasattr(self.data_collator, "epoch"):
            self.add_callback(CollatorEpochCallback(self.data_collator, spe))
        if a.stop_at_epoch is not None:
            self.add_callback(StopAtEpochCallback(a.stop_at_epoch, spe))

    # ------------------------------------------------------------------ one step (docs/architecture.md §3.3)
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        sample_index = inputs.pop("sample_index")
        reference_values = inputs.pop("reference_values", None)
        inputs.pop("speaker_id", None)
        inputs.pop("video_id", None)
        step = self.state.global_step
        epoch = step // self.steps_per_epoch
        unwrapped: SSPSForPreTraining = self.accelerator.unwrap_model(model)

        out = model(input_values=inputs["input_values"], local_input_values=inputs.get("local_input_values"))
        teacher = self.method.teacher_forward(unwrapped, inputs, step)
        positives = self.method.positives(out, teacher)  # (n_pos, b, D_pos)

        reference = None
        collecting = self.ssps is not None and self.ssps.collecting(epoch)
        if collecting or self.args.ssps_reference_train_mode:
            if reference_values is None:
                raise ValueError(
                    "an SSPS run (or ssps_reference_train_mode) needs `reference_values` in the batch: build the "
                    "collator with reference_samples (4 s = 64000)"
                )
            module = self.method.reference_module(unwrapped)
            with torch.no_grad(), (nullcontext(module) if self.args.ssps_reference_train_mode else eval_mode(module)):
                embeddings = module(input_values=reference_values).embeddings  # train mode: BatchNorm statistics move
            reference = F.normalize(embeddings, dim=-1) if collecting else None

        used = positives
        if self.ssps is not None and self.ssps.active(epoch):
            generator = torch.Generator(device=positives.device)
            generator.manual_seed(seeds.ssps_draw(self.args.seed, step, dist.rank()))
            sampled = self.ssps.sample(sample_index, generator, reference)  # before push
            used = self.ssps.substitute(positives, sampled)
            self._accumulate(self.ssps.metrics(sample_index, sampled))

        loss, metrics = self.method.loss(unwrapped, out, used, self.ssl_state, epoch)
        self.method.update_state(self.ssl_state, out, used, epoch)
        if reference is not None:
            assert self.ssps is not None
            self.ssps.push(dist.gather(sample_index.to(reference.device)), dist.gather(reference),
                           gather_views(positives.detach()))  # the *original* positives  # fmt: skip
        self._accumulate(metrics)
        return (loss, out) if return_outputs else loss

    # ------------------------------------------------------------------ optimiser (docs/method.md §11.2)
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = self.model if model is None else model
            params = [p for p in target.parameters() if p.requires_grad]
            self.optimizer = self.method.optimizer(params)
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None:
            factor = self.method.lr_factor(self.steps_per_epoch)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
        return self.lr_scheduler

    # ------------------------------------------------------------------ state and resume
    def ssl_state_dict(self) -> dict[str, torch.Tensor]:
        """Sections `moco.*`, `swav.*`, `dino.*` and `ssps.*` of `ssl_state.safetensors`."""
        out = {f"{name}.{k}": v for name, module in self.ssl_state.items() for k, v in module.state_dict().items()}
        if self.ssps is not None:
            out.update({f"ssps.{k}": v for k, v in self.ssps.state_dict().items()})
        return out

    def _get_output_dir(self, trial: Any) -> str:
        staging = getattr(self, "_staging_dir", None)
        return staging if staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """A checkpoint is complete or it does not exist (see `ssps_trainers.checkpoints`): the
        Trainer's files and the SSL state are written under `<run>/.staging/checkpoint-N`,
        flushed, marked complete and renamed into place; only then are older checkpoints
        stripped of their SSL state and rotated (`save_total_limit`), so the newest complete
        one is never touched. Overrides a private Trainer method: its only change is where the
        files go and when rotation happens."""
        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        staging_root = run_dir / STAGING_NAME
        staged, final = staging_root / name, run_dir / name
        if self.args.should_save and staged.exists():
            shutil.rmtree(staged)  # our own leftover of a killed save
        self.accelerator.wait_for_everyone()
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        self._staging_dir = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)  # every rank writes its own RNG state there
        finally:
            self._staging_dir = None
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            write_ssl_state(staged, self.ssl_state_dict(), self.state.global_step)
            mark_complete(staged, ssps=self.ssps is not None)
            if final.exists():  # the same step saved again (e.g. end of training): replace ours
                shutil.move(str(final), str(staging_root / f"{name}.replaced"))
            staged.rename(final)
            fsync_dir(run_dir)
            shutil.rmtree(staging_root / f"{name}.replaced", ignore_errors=True)
            complete = complete_checkpoints(run_dir, warn=False)
            for older in complete[:-1]:
                strip_ssl_state(older)  # weights stay, for averaging
            if limit is not None and limit > 0:
                keep = {final, *(Path(p) for p in [self.state.best_model_checkpoint] if p)}
                for older in complete[: max(0, len(complete) - limit)]:
                    if older not in keep:
                        shutil.rmtree(older)
        self.accelerator.wait_for_everyone()

    def load_ssl_state(self, checkpoint: str | Path) -> None:
        """Strict per section; an SSPS run whose first collecting epoch is still ahead of the
        checkpoint may start without an `ssps` section (the base-SSL continuation)."""
        folder = Path(checkpoint)
        path = folder / SSL_STATE_NAME
        tensors = read_ssl_state(folder)
        owned = list(self.ssl_state.items())
        if owned and not tensors:
            raise FileNotFoundError(
                f"{path} is missing: this {self.args.method} run needs its queues/centre to resume exactly"
            )
        for name, module in owned:
            part = section(tensors, name)
            if not part:
                raise KeyError(f"{path} has no '{name}' section")
            module.load_state_dict(part, strict=True)
        if self.ssps is not None:
            part = section(tensors, "ssps")
            if part:
                self.ssps.load_stores(part)
                return
            step = int(folder.name.split("-")[-1]) if "-" in folder.name else 0
            epoch = step // self.steps_per_epoch
            if not self.ssps.collecting(epoch):
                return  # a base-SSL continuation: collection starts later
            if saved_with_ssps(folder):
                raise FileNotFoundError(
                    f"{path} has no SSPS stores, but this checkpoint was saved by an SSPS run (epoch {epoch}): "
                    "its stores are lost, and refilling them would silently change the run. Resume from an "
                    "earlier complete checkpoint of the run, or restart the continuation from its base checkpoint"
                )
            raise KeyError(
                f"{path} has no 'ssps' section, but epoch {epoch} already uses SSPS: it is a base "
                "checkpoint, run scripts/fill_ssps_queues.py on it first"
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint's weights whole, or refuse. The Trainer's own loader accepts missing
        and unexpected names with a log line; a checkpoint saved before the student was renamed
        (`ssps.*`) then resumed with freshly initialised weights. Old names are mapped
        (`rename_legacy_keys`); any other mismatch is an error naming the file."""
        weights = Path(resume_from_checkpoint) / SAFE_WEIGHTS_NAME
        if model is not None or not weights.is_file():  # sharded, FSDP or SageMaker: the Trainer's path
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        state = rename_legacy_keys(load_file(str(weights), device="cpu"))
        result = self.model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"{weights} does not hold this model's weights: missing {len(result.missing_keys)} "
                f"(e.g. {result.missing_keys[:3]}), unexpected {len(result.unexpected_keys)} "
                f"(e.g. {result.unexpected_keys[:3]}); was it saved with another configuration?"
            )
        return None

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        if resume_from_checkpoint is True:
            latest = latest_complete_checkpoint(self.args.output_dir)
            if latest is None:
                raise ValueError(f"no complete checkpoint to resume in {self.args.output_dir}")
            resume_from_checkpoint = str(latest)
        if resume_from_checkpoint:
            self.load_ssl_state(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)

    # ------------------------------------------------------------------ validation (docs/method.md §14)
    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Verification EER / minDCF of the evaluated encoder (DINO teacher, MoCo query encoder,
        otherwise the encoder) on `eval_trials` over `eval_dataset` (`audio`, `utt_id`).

        Each process embeds a strided share of the utterances at full length (batched by
        length with masks, which equals one-by-one inference), the embeddings are gathered and
        scored with cosine on every process. Bypasses `prediction_step`: SSL batches have no
        labels. Use with `metric_for_best_model="eval_eer"`, `greater_is_better=False`.
        """
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if dataset is None or not self.eval_trials:
            raise ValueError("evaluate() needs an eval_dataset (audio, utt_id) and eval_trials")
        names = utterance_names(dataset, {u for _, a, b in self.eval_trials for u in (a, b)})
        known = set(names)
        missing = sorted({u for _, a, b in self.eval_trials for u in (a, b) if u not in known})
        if missing:  # checked before the embedding pass, not after it
            raise ValueError(f"{len(missing)} trial utterances are not in the eval dataset, e.g. {missing[:5]}")
        encoder = self.method.reference_module(self.accelerator.unwrap_model(self.model))
        device = next(encoder.parameters()).device
        mine = list(range(dist.rank(), len(names), dist.world_size()))
        share = torch.from_numpy(embed_rows(encoder, dataset, mine, self.args.per_device_eval_batch_size)).to(device)
        # gather: pad every share to the same length, then put rows back in dataset order
        per_rank = -(-len(names) // dist.world_size())
        padded = torch.zeros(per_rank, share.shape[1], device=device)
        padded[: share.shape[0]] = share
        everything = dist.gather(padded).cpu().numpy()  # (W * per_rank, D)
        embeddings = everything.reshape(dist.world_size(), per_rank, -1).transpose(1, 0, 2).reshape(-1, share.shape[1])[: len(names)]
        scores, labels = score_trials(embeddings, names, self.eval_trials)
        result = verification_metrics(scores, labels)
        metrics = {
            f"{metric_key_prefix}_eer": result["eer_percent"] / 100,
            f"{metric_key_prefix}_min_dcf": result["min_dcf_0.01"],
            f"{metric_key_prefix}_min_dcf_p05": result["min_dcf_0.05"],
        }
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # ------------------------------------------------------------------ logging
    def _accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            value = value.detach().float()
            if key in self._metric_sums:
                self._metric_sums[key] = self._metric_sums[key] + value
            else:
                self._metric_sums[key] = value
            self._metric_counts[key] = self._metric_counts.get(key, 0) + 1

    def _log_now(self, logs: dict[str, float]) -> None:
        if self.is_world_process_zero():
            self.log(dict(logs))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds the accumulated SSL/SSPS diagnostics (means since the last log) to `logs`."""
        if "loss" in logs and self._metric_sums:
            for key, total in self._metric_sums.items():
                value = total / self._metric_counts[key]
                if dist.is_distributed():
                    value = dist.gather(value[None]).nanmean()
                logs[key] = round(float(value), 6)
            self._metric_sums, self._metric_counts = {}, {}
        super().log(logs, start_time)

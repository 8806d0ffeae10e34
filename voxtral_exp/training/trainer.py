"""transformers' Trainer, with checkpoints that its own reload reads back."""

from __future__ import annotations

import datetime
import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Sampler
from transformers import PreTrainedModel, Trainer, TrainerCallback

from voxtral_exp.model.modeling import audio_modules, unwrap_peft

log = logging.getLogger(__name__)


class VoxtralTrainer(Trainer):
    """Trainer for Voxtral batches: batches grouped by length, checkpoints it can reload.

    (Batches from the encoder cache, and clip-length prompts, carry their own audio inputs: the
    model's audio hook, voxtral_exp.model.audio_path, places them.)

    With ``length_groups``, training batches are drawn from one length group at a time.

    With activation checkpointing, a frozen audio encoder still runs without a graph (see
    ``FrozenEncoderWithoutGraph``).

    Checkpoints keep the model's own parameter names.

    transformers 5 saves Voxtral under its legacy checkpoint key names, but the Trainer reloads
    checkpoints (resume, load_best_model_at_end) with a plain ``load_state_dict``, which then
    loads nothing and only warns. Checkpoints under ``output_dir`` are therefore written with
    ``save_original_format=False``; ``from_pretrained`` reads both layouts, and anything saved
    elsewhere (``final/``) keeps the standard layout.
    """

    def __init__(self, *args, length_groups: list[int] | None = None, encoder_cache=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.length_groups = length_groups  # per training example: group batches by it
        self.encoder_cache = encoder_cache  # the datasets' EncoderCache, for generation at the end
        self.add_callback(FrozenEncoderWithoutGraph())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Perplexity, exp(loss per label token), beside every evaluation's loss (eval_, and
        final_ for the evaluation of the model final/ holds): in the log history, on the dashboard
        and in the metrics evaluate() returns."""
        for prefix in ("eval", "final"):
            if f"{prefix}_loss" in logs:
                logs[f"{prefix}_perplexity"] = perplexity(logs[f"{prefix}_loss"])
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset=None):
        """With length groups, batches hold clips of one group (shuffled otherwise), so a 31 s
        clip does not pad its 5 s neighbours with a whole extra chunk of audio tokens."""
        if self.length_groups is None:
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthGroupSampler(self.length_groups, self.args.train_batch_size, seed)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        is_checkpoint = output_dir is not None and Path(output_dir).parent == Path(self.args.output_dir)
        if not (is_checkpoint and isinstance(model, PreTrainedModel)):
            return super()._save(output_dir, state_dict)
        model.save_pretrained = functools.partial(type(model).save_pretrained, model, save_original_format=False)
        try:
            return super()._save(output_dir, state_dict)
        finally:
            del model.save_pretrained  # back to the class method


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows past ~709


class LengthGroupSampler(Sampler[int]):
    """Indices in runs of ``batch_size`` that share a length group, in shuffled order.

    Each group is a bucket; buckets are shuffled and cut into batches, the batches are
    shuffled, and the few leftovers (fewer than a batch per bucket) come last. Every example
    appears once per epoch; the order depends only on the seed and the epoch (set by the
    Trainer), so a resumed run sees the same batches.
    """

    def __init__(self, groups: list[int], batch_size: int, seed: int):
        self.groups = groups
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        buckets: dict[int, list[int]] = {}
        for index in torch.randperm(len(self.groups), generator=generator).tolist():
            buckets.setdefault(self.groups[index], []).append(index)
        batches, leftovers = [], []
        for count in sorted(buckets):
            bucket = buckets[count]
            full = len(bucket) - len(bucket) % self.batch_size
            batches += [bucket[i : i + self.batch_size] for i in range(0, full, self.batch_size)]
            leftovers += bucket[full:]
        order = torch.randperm(len(batches), generator=generator).tolist()
        return iter([i for b in order for i in batches[b]] + leftovers)


class FrozenEncoderWithoutGraph(TrainerCallback):
    """Undoes what activation checkpointing does to a frozen audio encoder.

    When training starts with ``activation_checkpointing=true``, the Trainer hooks the input
    embeddings of every sub-model so that their output requires grad, which gradients into
    adapters need. For Voxtral that includes the audio encoder's first convolution: a frozen
    encoder would then build a graph, be recomputed and back-propagated through, for gradients
    nobody uses. The hook is removed there when no encoder weight trains.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        tower, _ = audio_modules(model)
        if any(p.requires_grad for p in tower.parameters()):
            return
        try:
            embeddings = tower.get_input_embeddings()
        except NotImplementedError:  # Voxtral Realtime's encoder: the Trainer hooked nothing there
            return
        for handle in getattr(unwrap_peft(model), "_require_grads_hooks", []):
            if handle.hooks_dict_ref() is embeddings._forward_hooks:
                handle.remove()


class Progress(TrainerCallback):
    """Training progress every ``every`` steps (and at the last): handed to ``report`` as
    {"step", "max_steps", "elapsed_s", "eta_s"} (run.json keeps it, which the web app reads) and,
    with ``log_lines``, logged for output that is not a terminal (CI, SLURM, the web app), where
    tqdm's bar would be one long line of carriage returns:
    ``Progress <step 20/200 (10%), 0:00:35 elapsed, ETA 0:05:15>``."""

    def __init__(self, every: int, log_lines: bool, report: Callable[[dict], None] | None = None):
        self.every = max(1, every)
        self.log_lines = log_lines
        self.report = report

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.first_step = time.monotonic(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        step, total = state.global_step, state.max_steps
        if not state.is_world_process_zero or (step % self.every and step != total):
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / max(1, step - self.first_step) * (total - step)
        if self.report is not None:
            self.report({"step": step, "max_steps": total, "elapsed_s": round(elapsed, 1), "eta_s": round(eta, 1)})
        if self.log_lines:
            clock = lambda seconds: str(datetime.timedelta(seconds=round(seconds)))  # noqa: E731
            log.info(
                "Progress <step %d/%d (%d%%), %s elapsed, ETA %s>",
                step,
                total,
                100 * step // max(1, total),
                clock(elapsed),
                clock(eta),
            )

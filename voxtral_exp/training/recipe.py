"""`train(cfg)`: one fine-tuning run, top to bottom.

lock and record the run -> validate the config -> setup (Trainer arguments, dataset metadata,
processor) -> data (read, screen) -> model (+ method) -> trainer (encoder cache, tracker) ->
train -> finish (final/, evaluation, results, model card) -> close the record and the tracker.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from transformers import (
    EarlyStoppingCallback,
    TrainerState,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import TrainOutput

from voxtral_exp.data.dataset import SpeechDataset, stream_features
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.filters import ExampleChecker
from voxtral_exp.data.languages import language_code
from voxtral_exp.data.sources import Data, load_data, preflight
from voxtral_exp.errors import UserError
from voxtral_exp.files import write_atomic, write_json
from voxtral_exp.model.modeling import (
    apply_method,
    build_model,
    count_parameters,
    torch_dtype,
)
from voxtral_exp.model.processor import OFFLINE_MODEL_ID, load_processor
from voxtral_exp.run.config import (
    REDACTED,
    ConfigError,
    resolved_container,
    secret_values,
    training_arguments,
    validate,
)
from voxtral_exp.run.model_card import model_card, write_model_card
from voxtral_exp.run.record import RunLock, RunRecord, git_state, write_resolved_config
from voxtral_exp.training.collator import TranscriptionCollator
from voxtral_exp.training.distributed import rank
from voxtral_exp.training.encoder_cache import EncoderCache
from voxtral_exp.training.evaluation import WerCallback, evaluate_wer, per_language_metrics
from voxtral_exp.training.loss import label_only_loss
from voxtral_exp.training.tracking import Tracker, TrackioLogger, prefix_metrics
from voxtral_exp.training.trainer import Progress, VoxtralTrainer

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job described by the composed config; return its final metrics.

    The run directory records the attempt first (run.json: running), so that a job that fails,
    even in validation, is recorded as failed.
    """
    run_dir = Path(cfg.paths.output_dir)
    main = rank() == 0  # only rank 0 writes (torchrun/accelerate)
    lock = RunLock(run_dir) if main else None
    if lock:
        lock.acquire()  # before anything is written: a second process into this run is refused
    record = RunRecord(run_dir, _overrides()) if main else None
    tracker = Tracker()
    try:
        scrub_secrets(cfg, run_dir)
        validate(cfg)
        with open_dict(cfg):  # fix the names this run is tracked under in its record (resume reuses them)
            cfg.tracking.name = _run_name(cfg, run_dir)
            cfg.tracking.group = _run_group(cfg)
        resolved = resolved_container(cfg)
        if main:
            write_resolved_config(run_dir, resolved)
        log.info(
            "Run <%s>: model=%s (%s) dataset=%s method=%s hardware=%s",
            run_dir,
            cfg.model.name,
            cfg.model.name_or_path or "random weights",
            cfg.dataset.name,
            cfg.method.name,
            cfg.hardware.device,
        )
        metrics = _run(cfg, run_dir, resolved, tracker, record)
        if record:
            record.finish("completed", metrics=metrics)
        return metrics
    except BaseException as e:
        if record:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            record.finish(status, error=f"{type(e).__name__}: {e}")
        raise
    finally:
        tracker.finish()
        if lock:
            lock.release()


def scrub_secrets(cfg: DictConfig, run_dir: Path) -> None:
    """Secrets never belong in the config: Hydra has already saved it under .hydra/, so blank
    them there, then refuse to run with a message saying where tokens come from."""
    found = secret_values(OmegaConf.to_container(cfg, resolve=False))
    if not found:
        return
    for path in (run_dir / ".hydra").glob("*.yaml"):
        text = path.read_text()
        for value in found.values():
            text = text.replace(value, REDACTED)
        write_atomic(path, text)
    keys = ", ".join(sorted(found))
    raise ConfigError(
        [
            f"{keys}: secrets never go in the config (it is saved with the run); "
            "export HF_TOKEN or run `hf auth login` instead"
        ]
    )


def _run(cfg: DictConfig, run_dir: Path, resolved: dict, tracker: Tracker, record: RunRecord | None) -> dict[str, Any]:
    """The run's stages, in order; ``record``: this process is rank 0, the one that writes."""
    main = record is not None
    set_seed(cfg.seed)
    args, processor, featurizer = _setup(cfg, run_dir)
    data = _data(cfg, processor, featurizer, run_dir, main)
    model = _model(cfg, args)
    trainer, checkpoint = _trainer(cfg, args, processor, featurizer, data, model, tracker, run_dir, resolved, record)
    result = _train(trainer, checkpoint)
    return _finish(cfg, trainer, result, featurizer, data, run_dir, resolved, tracker, main)


def _setup(cfg: DictConfig, run_dir: Path) -> tuple[TrainingArguments, Any, Featurizer]:
    """The Trainer's arguments, the dataset's metadata (Granary configs, splits), the processor."""
    args = training_arguments(cfg, run_dir)
    preflight(cfg.dataset)
    processor = load_processor(
        None if cfg.model.random_init else cfg.model.name_or_path,
        cfg.model.revision,
        cfg.model.audio_config.get("num_mel_bins", 128),
    )
    featurizer = Featurizer(processor, cfg.model.name_or_path or OFFLINE_MODEL_ID, language_code(cfg.dataset.language))
    return args, processor, featurizer


@dataclass
class RunData:
    """The screened examples (``examples``) and the datasets the Trainer reads from them."""

    examples: Data
    train: Any  # SpeechDataset, or an IterableDataset when streamed
    eval: SpeechDataset

    @property
    def streaming(self) -> bool:
        return self.examples.streaming


def _data(cfg: DictConfig, processor, featurizer: Featurizer, run_dir: Path, main: bool) -> RunData:
    """Read and screen the data (data_report.json), and wrap it as featurising datasets."""
    data = load_data(cfg.dataset, cfg.seed, processor.tokenizer)
    if main:
        write_json(run_dir / "data_report.json", data.report)
    if data.streaming:
        checker = ExampleChecker(cfg.dataset.filters, processor.tokenizer)
        dropped_log = run_dir / "dropped_stream.jsonl"  # every rank appends what its stream drops
        train = stream_features(data.train, data.adapter, featurizer, checker, cfg.dataset.on_error, dropped_log)
    else:
        train = SpeechDataset(data.train, featurizer, cfg.dataset.on_error)
    return RunData(data, train, SpeechDataset(data.eval, featurizer, cfg.dataset.on_error))


def _model(cfg: DictConfig, args: TrainingArguments) -> torch.nn.Module:
    """The model in its training precision, with the method applied (LoRA adapters or full)."""
    base = build_model(cfg.model, torch_dtype(cfg.model.dtype, args.bf16, cfg.method.name), cfg.seed)
    return apply_method(base, cfg.method)


def _trainer(
    cfg: DictConfig,
    args: TrainingArguments,
    processor,
    featurizer: Featurizer,
    data: RunData,
    model: torch.nn.Module,
    tracker: Tracker,
    run_dir: Path,
    resolved: dict,
    record: RunRecord | None,
) -> tuple[VoxtralTrainer, str | None]:
    """The encoder cache (filled), the tracker (started or continued), the Trainer, and the
    checkpoint to resume from."""
    cache = _fill_encoder_cache(cfg, args, model, data) if cfg.training.encoder_cache else None
    checkpoint = _checkpoint_to_resume(cfg.training.resume_from_checkpoint, run_dir)
    total, trainable = count_parameters(model)
    if record is not None and cfg.tracking.enabled:
        tracker.start(
            project=cfg.tracking.project,
            name=args.run_name,
            group=cfg.tracking.group,
            config={
                **resolved,
                "run_dir": str(run_dir),
                "git": git_state(),
                "parameters": {"total": total, "trainable": trainable},
            },
            space_id=cfg.tracking.space_id,
            replay=_log_history(checkpoint) if checkpoint else None,
            system_metrics_interval=cfg.tracking.get("system_metrics_interval", 10),
        )
    trainer = VoxtralTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=TranscriptionCollator(processor.tokenizer.pad_token_id, cfg.training.label_only_logits),
        processing_class=processor,
        compute_loss_func=label_only_loss if cfg.training.label_only_logits else None,
        callbacks=_callbacks(cfg, featurizer, data.examples.eval, tracker, cache, args, record),
        chunk_counts=data.train.chunk_counts() if cfg.training.group_by_chunks and not data.streaming else None,
        encoder_cache=cache,
    )
    return trainer, checkpoint


def _fill_encoder_cache(
    cfg: DictConfig, args: TrainingArguments, model: torch.nn.Module, data: RunData
) -> EncoderCache:
    """The frozen encoder's output for every train and eval clip, computed once (each rank its share)."""
    cache = EncoderCache(cfg.training.encoder_cache, model)
    model.to(args.device)
    for dataset in (data.train, data.eval):
        cache.fill(
            model,
            dataset,
            args.per_device_eval_batch_size,
            args.dataloader_num_workers,
            args.process_index,
            args.world_size,
        )
        dataset.cache = cache
    if args.world_size > 1:
        torch.distributed.barrier()  # every rank's share is on disk before any rank trains
    return cache


def _train(trainer: VoxtralTrainer, checkpoint: str | None) -> TrainOutput:
    if checkpoint and training_finished(checkpoint):
        return finish_from_checkpoint(trainer, checkpoint)  # killed after its last checkpoint: no extra step
    return trainer.train(resume_from_checkpoint=checkpoint)


def _finish(
    cfg: DictConfig,
    trainer: VoxtralTrainer,
    result: TrainOutput,
    featurizer: Featurizer,
    data: RunData,
    run_dir: Path,
    resolved: dict,
    tracker: Tracker,
    main: bool,
) -> dict[str, Any]:
    """final/ (model, processor, model card), the evaluation (loss, WER/CER, predictions), the
    result files and the summary."""
    final_dir = run_dir / "final"
    trainer.save_model(str(final_dir))  # the best checkpoint's weights when load_best_model_at_end
    if cfg.evaluation.wer_at_end:
        trainer.remove_callback(WerCallback)  # WER is computed once below, with the predictions
    eval_metrics = trainer.evaluate()
    predictions = []
    if cfg.evaluation.wer_at_end:  # every rank generates its share
        wer_metrics, predictions = evaluate_wer(
            trainer.model,
            featurizer,
            data.examples.eval,
            cfg.evaluation,
            cfg.dataset.filters.max_label_tokens,
            trainer.encoder_cache,
        )
        eval_metrics.update(wer_metrics)
    if not main:
        return eval_metrics
    trainer.processing_class.save_pretrained(str(final_dir))
    total, trainable = count_parameters(trainer.model)
    train_results = {
        **result.metrics,
        "global_step": result.global_step,
        "parameters_total": total,
        "parameters_trainable": trainable,
    }
    write_json(run_dir / "train_results.json", train_results)
    if predictions:
        lines = (json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
        write_atomic(run_dir / "predictions.jsonl", "".join(lines))
    write_json(run_dir / "eval_results.json", eval_metrics)
    languages = sorted({e.language for e in data.examples.eval if e.language})
    record = json.loads((run_dir / "run.json").read_text())
    write_model_card(final_dir, model_card(resolved, eval_metrics, train_results, record, languages))
    if cfg.method.name == "lora" and cfg.model.random_init:
        # a random base cannot be re-downloaded: rebuilt from its seed (the very weights trained
        # on, frozen), it is kept beside the adapter
        dtype = torch_dtype(cfg.model.dtype, trainer.args.bf16, cfg.method.name)
        build_model(cfg.model, dtype, cfg.seed).save_pretrained(str(final_dir / "base_model"))
    scalars = {k: v for k, v in eval_metrics.items() if isinstance(v, (int, float))}
    tracker.log(prefix_metrics(scalars | per_language_metrics(eval_metrics)), step=trainer.state.global_step)
    log.info("Done <%s>: %s", run_dir, scalars)
    log.info("%s", run_summary(trainer.state.log_history, eval_metrics, predictions, run_dir, cfg))
    return scalars


def run_summary(
    history: list[dict], eval_metrics: dict, predictions: list[dict], run_dir: Path, cfg: DictConfig
) -> str:
    """What a run learned, in words: loss before and after, WER, a few transcripts, where to look."""
    losses = [(e["step"], e["loss"]) for e in history if "loss" in e]
    lines = [f"Summary of <{run_dir}>:"]
    if losses:
        (first_step, first), (last_step, last) = losses[0], losses[-1]
        change = 100 * (1 - last / first) if first > 0 else 0.0
        lines.append(
            f"  training loss {first:.3f} (step {first_step}) -> {last:.3f} (step {last_step}): "
            f"{abs(change):.0f}% {'lower' if change >= 0 else 'higher'}"
        )
    if "eval_loss" in eval_metrics:
        lines.append(f"  eval loss {eval_metrics['eval_loss']:.3f} (perplexity {eval_metrics['eval_perplexity']:.4g})")
    if "eval_wer" in eval_metrics:
        before = next((e["eval_wer"] for e in history if "eval_wer" in e and e.get("step") == 0), None)
        start = f"{before:.3f} before training -> " if before is not None else ""
        lines.append(
            f"  eval WER {start}{eval_metrics['eval_wer']:.3f} after (CER {eval_metrics['eval_cer']:.3f}; "
            f"{len(predictions)} clips, predictions.jsonl)"
        )
    for p in predictions[:4]:
        lines.append(f"    reference:  {p['reference']}\n    hypothesis: {p['hypothesis']}")
    lines.append(
        f"  run directory: {run_dir} (final/ holds the model: python -m voxtral_exp.transcribe {run_dir} clip.wav)"
    )
    if cfg.tracking.enabled:
        trackio_dir = os.environ.get("TRACKIO_DIR")
        lines.append(
            f"  dashboard: {f'TRACKIO_DIR={trackio_dir} ' if trackio_dir else ''}trackio show --project "
            f"{cfg.tracking.project} (run {cfg.tracking.name})"
        )
    return "\n".join(lines)


def _callbacks(
    cfg: DictConfig,
    featurizer: Featurizer,
    eval_examples: list,
    tracker: Tracker,
    cache: EncoderCache | None,
    args: TrainingArguments,
    record: RunRecord | None,
) -> list:
    callbacks = [TrackioLogger(tracker), Progress(args.logging_steps, args.disable_tqdm, record and record.progress)]
    if cfg.evaluation.wer_during_training:  # before early stopping, which reads the WER it adds
        log_wer = lambda metrics, step: tracker.log(prefix_metrics(metrics), step=step)  # noqa: E731
        callbacks.append(
            WerCallback(featurizer, eval_examples, cfg.evaluation, log_wer, cfg.dataset.filters.max_label_tokens, cache)
        )
    if cfg.evaluation.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.evaluation.early_stopping_patience))
    return callbacks


def _checkpoint_to_resume(setting: Any, run_dir: Path) -> str | None:
    """`training.resume_from_checkpoint`: a path, or true for the newest complete checkpoint."""
    if setting is True:
        checkpoint = last_complete_checkpoint(run_dir / "checkpoints")
        if checkpoint is None:
            raise UserError(
                f"no complete checkpoint under {run_dir / 'checkpoints'} to resume from: start a new run "
                "(training.resume_from_checkpoint=null)"
            )
        log.info("Resuming <training.resume_from_checkpoint=true> from %s", checkpoint)
        return str(checkpoint)
    return setting or None


def _log_history(checkpoint: str) -> list[dict]:
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())["log_history"]


def training_finished(checkpoint: str) -> bool:
    """Whether the checkpoint was saved at the run's last step (trainer_state's own max_steps)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return state["global_step"] >= state["max_steps"] > 0


def finish_from_checkpoint(trainer: VoxtralTrainer, checkpoint: str) -> TrainOutput:
    """The run was stopped after its last checkpoint, before its end: take the weights and
    state from that checkpoint, and train no further (the Trainer would run one more step)."""
    log.info(
        "Resuming <%s>: training had finished (its last step is checkpointed); finishing the run "
        "(final/, evaluation, model card) without training",
        checkpoint,
    )
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    trainer._load_from_checkpoint(checkpoint)
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best and Path(best).is_dir():
        trainer._load_best_model()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return TrainOutput(
        trainer.state.global_step, losses[-1] if losses else float("nan"), {"resumed_without_training": True}
    )


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose save finished.

    The Trainer writes trainer_state.json last, after weights, optimizer, scheduler and RNG
    states, and deletes older checkpoints only after that; a kill during a save leaves a
    folder without a readable trainer_state.json, which is skipped (and renamed so the
    Trainer's own checkpoint rotation never counts it).
    """
    for checkpoint in sorted(folder.glob("checkpoint-*"), key=lambda p: -int(p.name.split("-")[1])):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return checkpoint
        except (OSError, ValueError):
            log.warning("Skipping incomplete checkpoint %s (interrupted save)", checkpoint)
            if rank() == 0:  # out of the Trainer's checkpoint rotation
                checkpoint.rename(checkpoint.with_name(f"incomplete-{checkpoint.name}"))
    return None


def _overrides() -> list[str]:
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _run_name(cfg: DictConfig, run_dir: Path) -> str:
    """`tracking.name`, else <experiment>/<run dir> or, in a sweep, <sweep dir>/<job number>."""
    if cfg.tracking.name:
        return cfg.tracking.name
    if _is_multirun():
        return f"{run_dir.parent.parent.name}_{run_dir.parent.name}/{run_dir.name}"
    return f"{cfg.experiment_name}/{run_dir.name}"


def _run_group(cfg: DictConfig) -> str:
    if cfg.tracking.group:
        return cfg.tracking.group
    if _is_multirun():
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        return f"sweep-{sweep_dir.parent.name}_{sweep_dir.name}"
    return cfg.experiment_name

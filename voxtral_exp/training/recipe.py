"""One fine-tuning run, top to bottom, as a recipe: ``setup()`` -> ``train()`` -> ``finish()`` ->
``cleanup()``.

setup: lock and record the run, validate the config, then the Trainer's arguments and processor
(``_setup_processor``), the data (``_setup_data``), the model and its method (``_setup_model``),
the encoder cache, tracker and Trainer (``_setup_trainer``). train: train, or resume from a
checkpoint. finish: final/ (model, processor, model card), the evaluation (loss, WER/CER,
predictions), the result files and the summary. cleanup: close the run record, the tracker
and the lock, whatever happened.

Only the main process (rank 0 under torchrun/accelerate) writes files and the trackio run.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from transformers import EarlyStoppingCallback, set_seed
from transformers.trainer_utils import TrainOutput

from voxtral_exp.data.dataset import SpeechDataset, decodable, stream_features
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.filters import ExampleChecker
from voxtral_exp.data.languages import language_code
from voxtral_exp.data.sources import Data, load_data, preflight
from voxtral_exp.files import write_atomic, write_json
from voxtral_exp.model.audio_rule import AudioRule, save_rule
from voxtral_exp.model.modeling import (
    apply_method,
    build_model,
    count_parameters,
    frozen_base,
    torch_dtype,
    unwrap_peft,
)
from voxtral_exp.model.processor import OFFLINE_MODEL_ID, load_processor
from voxtral_exp.realtime import model as realtime
from voxtral_exp.realtime.stream import StreamCollator, StreamFeaturizer
from voxtral_exp.run.config import resolved_container, training_arguments, validate
from voxtral_exp.run.model_card import model_card, write_model_card
from voxtral_exp.run.names import model_chosen_by, overrides, run_group, run_name
from voxtral_exp.run.record import RunLock, RunRecord, git_state, write_resolved_config
from voxtral_exp.run.secrets import refuse_secrets
from voxtral_exp.run.summary import run_summary
from voxtral_exp.training.checkpoints import (
    checkpoint_to_resume,
    finish_from_checkpoint,
    trainer_state,
    training_finished,
)
from voxtral_exp.training.collator import TranscriptionCollator
from voxtral_exp.training.distributed import rank
from voxtral_exp.training.encoder_cache import EncoderCache, chosen_folder
from voxtral_exp.training.evaluation import WerCallback, evaluate_wer, per_language_metrics
from voxtral_exp.training.loss import label_only_loss
from voxtral_exp.training.tracking import Tracker, TrackioLogger, prefix_metrics, unclaimed_name
from voxtral_exp.training.trainer import Progress, VoxtralTrainer

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job described by the composed config; return its final metrics."""
    interruptible()
    recipe = FineTuneRecipe(cfg)
    try:
        recipe.setup()
        recipe.train()
        metrics = recipe.finish()
    except BaseException as e:
        recipe.cleanup(error=e)
        raise
    recipe.cleanup(metrics=metrics)
    return metrics


def interruptible() -> None:
    """Let Ctrl-C (SIGINT, also the app's Stop) end the run as "interrupted" and resumable even
    when it was started with SIGINT ignored, as a script's background jobs (`cmd &`) are."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class RunData:
    """The screened examples (``examples``) and the datasets the Trainer reads from them."""

    examples: Data
    train: Any  # SpeechDataset, or an IterableDataset when streamed
    eval: SpeechDataset

    @property
    def streaming(self) -> bool:
        return self.examples.streaming


class FineTuneRecipe:
    """A run's state, built stage by stage; every stage reads what the earlier ones set on ``self``."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.paths.output_dir)
        self.is_main_process = rank() == 0
        self.lock = RunLock(self.run_dir) if self.is_main_process else None
        self.record: RunRecord | None = None  # run.json, once the lock is held (main process only)
        self.tracker = Tracker()
        self.checkpoint: str | None = None  # the checkpoint this attempt continues from
        self.realtime = realtime.is_realtime(cfg.model)  # Voxtral Realtime: a text stream on word timings

    # --- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """The run's record, config, processor, data, model and Trainer, in that order; the config
        is validated before anything heavy loads."""
        self._setup_record()
        set_seed(self.cfg.seed)
        self._setup_processor()
        self._setup_data()
        self._setup_model()
        self._setup_trainer()

    def _setup_record(self) -> None:
        """Lock the run directory and record the attempt (run.json: running) first, so that a job
        that fails, even in validation, is recorded as failed; then check the config and save it
        resolved."""
        cfg, run_dir = self.cfg, self.run_dir
        if self.is_main_process:
            self.lock.acquire()  # before anything is written: a second process into this run is refused
            self.record = RunRecord(run_dir, overrides())
        chooser = model_chosen_by()
        log.info(
            "Run <%s>: model=%s (%s%s) dataset=%s method=%s hardware=%s",
            run_dir,
            cfg.model.name,
            "random weights" if cfg.model.random_init else cfg.model.name_or_path,
            f"; chosen by {chooser}: put model=... after it to choose another" if chooser else "",
            cfg.dataset.name,
            cfg.method.name,
            cfg.hardware.device,
        )
        refuse_secrets(cfg, run_dir)
        validate(cfg)
        with open_dict(cfg):  # fix the names this run is tracked under in its record (resume reuses them)
            cfg.tracking.name = run_name(cfg, run_dir)
            cfg.tracking.group = run_group(cfg)
            if self.is_main_process and cfg.tracking.enabled and not cfg.tracking.space_id:
                cfg.tracking.name = unclaimed_name(cfg.tracking.project, cfg.tracking.name, self.record.trackio_id)
        self.resolved = resolved_container(cfg)
        if self.is_main_process:
            write_resolved_config(run_dir, self.resolved)

    def _setup_processor(self) -> None:
        """The Trainer's arguments, the dataset's metadata (Granary configs, splits), the processor."""
        cfg = self.cfg
        self.args = training_arguments(cfg, self.run_dir)
        preflight(cfg.dataset)
        name = None if cfg.model.random_init else cfg.model.name_or_path
        language = language_code(cfg.dataset.language)
        if self.realtime:  # its delay is written into the tokenizer file that every saved folder holds
            vocab = cfg.model.text_config.get("vocab_size")
            self.processor = realtime.load_processor(name, cfg.model.revision, cfg.model.delay_ms, vocab)
            self.featurizer = StreamFeaturizer(self.processor, language)
            log.info("Stream <model.delay_ms>: %d ms delay", realtime.delay_ms(self.processor))
            return
        self.processor = load_processor(name, cfg.model.revision, cfg.model.audio_config.get("num_mel_bins", 128))
        rule = AudioRule.of(cfg.model)
        save_rule(self.processor, rule)  # saved with every checkpoint and final/: how the model reads audio
        model_id = cfg.model.name_or_path or OFFLINE_MODEL_ID
        self.featurizer = Featurizer(self.processor, model_id, language, rule.audio_tokens)

    def _setup_data(self) -> None:
        """Read and screen the data (data_report.json), and wrap it as featurising datasets."""
        cfg = self.cfg
        stream = self.featurizer.builder if self.realtime else None
        data = load_data(cfg.dataset, cfg.seed, self.processor.tokenizer, stream=stream)
        data.eval = decodable(data.eval, cfg.dataset.on_error, data.report)
        if self.is_main_process:
            write_json(self.run_dir / "data_report.json", data.report)
        evaluation = SpeechDataset(data.eval, self.featurizer, cfg.dataset.on_error)
        if data.streaming:
            checker = ExampleChecker(cfg.dataset.filters, self.processor.tokenizer)
            dropped_log = self.run_dir / "dropped_stream.jsonl"  # every rank appends what its stream drops
            train = stream_features(
                data.train, data.adapter, self.featurizer, checker, cfg.dataset.on_error, dropped_log
            )
        else:
            train = SpeechDataset(data.train, self.featurizer, cfg.dataset.on_error)
        self.data = RunData(data, train, evaluation)

    def _setup_model(self) -> None:
        """The model in its training precision, with the method applied (LoRA adapters or full)."""
        cfg = self.cfg
        self.dtype = torch_dtype(cfg.model.dtype, self.args.bf16, cfg.method.name)
        build = realtime.build_model if self.realtime else build_model
        self.model = apply_method(build(cfg.model, self.dtype, cfg.seed), cfg.method, cfg.model.revision)

    def _setup_trainer(self) -> None:
        """The encoder cache (filled), the checkpoint to resume from, the tracker (started or
        continued) and the Trainer."""
        cfg, data = self.cfg, self.data
        cache_folder = None if self.realtime else chosen_folder(cfg, data.examples, self.model)
        self.cache = self._fill_encoder_cache(cache_folder) if cache_folder else None
        self.checkpoint = checkpoint_to_resume(cfg.resume, self.run_dir, self.is_main_process)
        if self.is_main_process and cfg.tracking.enabled:
            self._start_tracker()
        group = cfg.speed.group_by_length and not data.streaming and not self.realtime
        if self.realtime:  # the model's own loss on the whole text stream
            collator, loss = StreamCollator(self.processor.num_delay_tokens, self.dtype), None
        else:
            collator = TranscriptionCollator(self.processor.tokenizer.pad_token_id, cfg.speed.label_only_logits)
            loss = label_only_loss if cfg.speed.label_only_logits else None
        self.trainer = VoxtralTrainer(
            model=self.model,
            args=self.args,
            train_dataset=data.train,
            eval_dataset=data.eval,
            data_collator=collator,
            processing_class=self.processor,
            compute_loss_func=loss,
            callbacks=self._callbacks(),
            length_groups=data.train.length_groups() if group else None,
            encoder_cache=self.cache,
        )

    def _fill_encoder_cache(self, folder: str) -> EncoderCache:
        """The frozen encoder's output for every train and eval clip, computed once (each rank its
        share, with only the audio tower on the device)."""
        args = self.args
        cache = EncoderCache(folder, self.model, self.cfg.model.encoder_window)
        for dataset in (self.data.train, self.data.eval):
            cache.fill(
                self.model,
                dataset,
                args.per_device_eval_batch_size,
                args.dataloader_num_workers,
                args.process_index,
                args.world_size,
                args.device,
            )
            dataset.cache = cache
        if args.world_size > 1:
            torch.distributed.barrier()  # every rank's share is on disk before any rank trains
        return cache

    def _start_tracker(self) -> None:
        cfg = self.cfg
        total, trainable = count_parameters(self.model)
        config = {
            **self.resolved,
            "run_dir": str(self.run_dir),
            "git": git_state(),
            "parameters": {"total": total, "trainable": trainable},
        }
        self.tracker.start(
            project=cfg.tracking.project,
            name=self.args.run_name,
            group=cfg.tracking.group,
            config=config,
            space_id=cfg.tracking.space_id,
            replay=trainer_state(self.checkpoint)["log_history"] if self.checkpoint else None,
            system_metrics_interval=cfg.tracking.get("system_metrics_interval", 10),
            own_id=self.record.trackio_id,
        )
        if self.tracker.run is not None:
            self.record.tracked(cfg.tracking.project, self.tracker.run.name, self.tracker.run.id)

    def _callbacks(self) -> list:
        cfg, args, tracker = self.cfg, self.args, self.tracker
        report = self.record.progress if self.record else None
        callbacks = [TrackioLogger(tracker), Progress(args.logging_steps, args.disable_tqdm, report)]
        if cfg.evaluation.wer_during_training:  # before early stopping, which reads the WER it adds
            log_wer = lambda metrics, step: tracker.log(prefix_metrics(metrics), step=step)  # noqa: E731
            max_tokens = cfg.dataset.filters.max_label_tokens
            examples = self.data.examples.eval
            callbacks.append(WerCallback(self.featurizer, examples, cfg.evaluation, log_wer, max_tokens, self.cache))
        if cfg.evaluation.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.evaluation.early_stopping_patience))
        return callbacks

    # --- train ---------------------------------------------------------------------------------

    def train(self) -> None:
        if self.checkpoint and training_finished(self.checkpoint):  # killed after its last checkpoint
            self.result = finish_from_checkpoint(self.trainer, self.checkpoint)  # no extra step
        else:
            self.result = self.trainer.train(resume_from_checkpoint=self.checkpoint)

    # --- finish --------------------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """final/ (model, processor, model card), the evaluation (loss, WER/CER, predictions), the
        result files and the summary; returns the scalar eval metrics."""
        trainer, final_dir = self.trainer, self.run_dir / "final"
        trainer.save_model(str(final_dir))  # the best checkpoint's weights when load_best_model_at_end
        if self.is_main_process:  # the whole model in final/ before anything that can fail
            self._save_processor_and_base(final_dir)
        eval_metrics, predictions = self._evaluate()
        if not self.is_main_process:
            return eval_metrics
        train_results = self._write_results(self.result, eval_metrics, predictions)
        self._write_model_card(final_dir, eval_metrics, train_results)
        scalars = {k: v for k, v in eval_metrics.items() if isinstance(v, (int, float))}
        generated = scalars | per_language_metrics(eval_metrics)  # final/wer, final/wer_fr, ...
        generated = {"final_" + k.removeprefix("eval_"): v for k, v in generated.items() if k not in self.final_logged}
        self.tracker.log(prefix_metrics(generated), step=trainer.state.global_step)  # WER/CER: final/wer, ...
        log.info("Done <%s>: %s", self.run_dir, scalars)
        log.info("%s", run_summary(trainer.state.log_history, eval_metrics, predictions, self.run_dir, self.cfg))
        return scalars

    def _evaluate(self) -> tuple[dict[str, Any], list[dict]]:
        """Eval loss and, with evaluation.wer_at_end, WER/CER by generation (every rank its share)
        of the model final/ holds. On the dashboard they are final/* (the last training evaluation
        keeps its eval/* point); in eval_results.json, eval_*."""
        cfg, trainer = self.cfg, self.trainer
        for callback in (WerCallback, EarlyStoppingCallback):  # training-time evaluation only
            trainer.remove_callback(callback)
        final = trainer.evaluate(metric_key_prefix="final")  # logged (final/loss, ...) by the Trainer
        eval_metrics = {"eval_" + k.removeprefix("final_"): v for k, v in final.items()}
        self.final_logged = set(eval_metrics)
        predictions: list[dict] = []
        if cfg.evaluation.wer_at_end:
            wer_metrics, predictions = evaluate_wer(
                trainer.model,
                self.featurizer,
                self.data.examples.eval,
                cfg.evaluation,
                cfg.dataset.filters.max_label_tokens,
                trainer.encoder_cache,
            )
            eval_metrics.update(wer_metrics)
        return eval_metrics, predictions

    def _write_results(self, result: TrainOutput, eval_metrics: dict, predictions: list[dict]) -> dict[str, Any]:
        """train_results.json, eval_results.json and predictions.jsonl."""
        total, trainable = count_parameters(self.trainer.model)
        train_results = {
            **result.metrics,
            "global_step": result.global_step,
            "parameters_total": total,
            "parameters_trainable": trainable,
        }
        write_json(self.run_dir / "train_results.json", train_results)
        if predictions:
            lines = (json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
            write_atomic(self.run_dir / "predictions.jsonl", "".join(lines))
        write_json(self.run_dir / "eval_results.json", eval_metrics)
        return train_results

    def _write_model_card(self, final_dir: Path, eval_metrics: dict, train_results: dict) -> None:
        languages = sorted({e.language for e in self.data.examples.eval if e.language})
        card = model_card(self.resolved, eval_metrics, train_results, self.record.data, languages)
        write_model_card(final_dir, card)

    def _save_processor_and_base(self, final_dir: Path) -> None:
        """The processor (and with it how the model reads audio) and, for an adapter on a random
        base, that base: final/ then holds a loadable model even if the evaluation fails."""
        cfg = self.cfg
        self.trainer.processing_class.save_pretrained(str(final_dir))
        if cfg.method.name == "lora" and cfg.model.random_init:
            # a random base cannot be re-downloaded: the very weights trained on (frozen under the
            # adapter, so as built from the seed) are kept beside it
            unwrap_peft(self.model).save_pretrained(str(final_dir / "base_model"), state_dict=frozen_base(self.model))

    # --- cleanup -------------------------------------------------------------------------------

    def cleanup(self, metrics: dict | None = None, error: BaseException | None = None) -> None:
        """Close the run record (completed, failed or interrupted), the tracker and the lock."""
        try:
            if self.record is not None:
                if error is None:
                    self.record.finish("completed", metrics=metrics)
                else:
                    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                    self.record.finish(status, error=f"{type(error).__name__}: {error}")
        finally:
            self.tracker.finish()
            if self.lock is not None:
                self.lock.release()

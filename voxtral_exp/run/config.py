"""Config helpers: OmegaConf resolvers, validation, the resolved config as plain Python."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from transformers import TrainingArguments

from voxtral_exp.data.languages import LanguageError, language_code
from voxtral_exp.data.sources.granary import granary_problems
from voxtral_exp.errors import UserError
from voxtral_exp.model.modeling import lora_config
from voxtral_exp.model.tokens import AUDIO_TOKEN_MODES
from voxtral_exp.realtime.model import DelayError, check_delay, is_realtime
from voxtral_exp.run.schema import unknown_key_problems
from voxtral_exp.run.secrets import redact

ROOT = Path(__file__).resolve().parents[2]  # the repository (train.py, conf/, data/)
OBJECTIVES = ("eval_loss", "eval_wer", "eval_cer")
NORMALIZERS = ("none", "basic", "whisper_english")


def register_resolvers() -> None:
    """`${voxtral.*:}` resolvers used by conf/ (idempotent)."""
    resolvers = {
        "voxtral.root": lambda: str(ROOT),
        "voxtral.device": lambda: "cuda" if torch.cuda.is_available() else "cpu",
        "voxtral.bf16_supported": lambda: torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        "voxtral.eq": lambda a, b: str(a) == str(b),
        "voxtral.next_trial_dir": next_trial_dir,
        "voxtral.mkdir": mkdir,
        "voxtral.sample_eval": sample_eval,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def mkdir(path: str) -> str:
    """Create ``path`` (for files that must exist before Hydra makes the sweep directory)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def sample_eval(train_manifest: str | None, data_dir: str) -> str | None:
    """`dataset.eval_manifest`'s default: the bundled sample's eval set when the train manifest is
    the bundled sample's; otherwise null, so that `dataset.eval_fraction` of the user's own data is
    held out (a user's data is never scored on the sample)."""
    sample = Path(data_dir) / "sample"
    if train_manifest and Path(train_manifest).expanduser().resolve() == (sample / "train.jsonl").resolve():
        return str(sample / "eval.jsonl")
    return None


def next_trial_dir(sweep_dir: str) -> str:
    """`trial-N` with N past every trial folder already in the sweep: a continued Optuna study
    numbers its jobs from 0 again, and must not overwrite the earlier trials' directories."""
    taken = [int(p.name.split("-")[1]) for p in Path(sweep_dir).glob("trial-*") if p.name.split("-")[1].isdigit()]
    return f"trial-{max(taken, default=-1) + 1}"


register_resolvers()


class ConfigError(UserError, ValueError):
    """Every problem found in a config, each naming its key and what to do."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n  - " + "\n  - ".join(problems))


def validate(cfg: DictConfig) -> None:
    """Check the resolved config before anything heavy loads; raise one ConfigError listing all
    problems. Beyond voxtral_exp's own checks, the objects the config becomes are built here
    (transformers' TrainingArguments, peft's LoraConfig), so whatever they refuse is found now."""
    trainer_problems = _trainer_problems(cfg.trainer, cfg.hardware)
    method_problems = _method_problems(cfg.method, cfg.trainer)
    problems = [
        *unknown_key_problems(cfg),
        *(trainer_problems or _refused(lambda: training_arguments(cfg, Path("run_dir")), "trainer")),
        *(
            method_problems
            or _refused(lambda: lora_config(cfg.method) if cfg.method.name == "lora" else None, "method")
        ),
        *(_realtime_problems(cfg) if is_realtime(cfg.model) else _model_problems(cfg.model)),
        *_dataset_problems(cfg.dataset, cfg.trainer),
        *_speed_problems(cfg.speed, cfg.method, cfg.dataset),
        *_evaluation_problems(cfg),
    ]
    if problems:
        raise ConfigError(problems)


def training_arguments(cfg: DictConfig, run_dir: Path) -> TrainingArguments:
    """`trainer.*` as transformers' TrainingArguments for a run directory."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    if kwargs.get("disable_tqdm") is None:  # auto: tqdm's bar on a terminal, log lines elsewhere
        kwargs["disable_tqdm"] = not sys.stderr.isatty()
    return TrainingArguments(
        **kwargs,
        output_dir=str(run_dir / "checkpoints"),
        run_name=cfg.tracking.name,
        report_to="none",  # trackio is driven by voxtral_exp.training.tracking
        prediction_loss_only=True,  # eval loss only; WER/CER come from generation
    )


def _refused(build, group: str) -> list[str]:
    """What the library object behind config group ``group`` refuses when ``build`` makes it:
    its own message, with its argument names (``--save_steps``, ``r``) as config keys."""
    library = {"trainer": "transformers' TrainingArguments", "method": "peft's LoraConfig"}[group]
    try:
        build()
    except OmegaConfBaseException:  # the config itself (interpolation), not the library
        raise
    except TypeError as e:  # an argument the library does not have
        name = re.search(r"argument '(\w+)'", str(e))
        key = f"{group}.{name.group(1)}" if name else f"{group}.*"
        close = difflib.get_close_matches(name.group(1), _trainer_fields(), n=1) if name and group == "trainer" else []
        hint = f"did you mean trainer.{close[0]}? " if close else ""
        return [f"{key}: {library} has no such argument ({hint}{e}); remove it or fix its name"]
    except ValueError as e:
        message = re.sub(r"--(\w+)", rf"{group}.\1", " ".join(str(e).split())).rstrip(".")
        keys = [key for phrase, key in LIBRARY_PHRASES if phrase in message]
        named = ", ".join(dict.fromkeys(keys)) or f"the {group}.* keys it names"
        return [f"{group}.*: {library} refuses these settings: {message}. Change {named}"]
    return []


# TrainingArguments' messages name some settings in words: the config keys they mean
LIBRARY_PHRASES = (
    ("saving steps", "trainer.save_steps"),
    ("evaluation steps", "trainer.eval_steps"),
    ("save and eval strategy", "trainer.save_strategy and trainer.eval_strategy"),
    ("metric_for_best_model", "trainer.metric_for_best_model"),
)
# TrainingArguments fields that voxtral_exp sets itself, or that Trainer ignores: what to use instead
NOT_FOR_THE_TRAINER = {
    "resume_from_checkpoint": "resume=true (the run directory's newest checkpoint) or resume=PATH, or "
    "`python -m voxtral_exp.resume RUN_DIR`; Trainer ignores this field",
    "output_dir": "hydra.run.dir=DIR (checkpoints go to <run dir>/checkpoints)",
    "run_name": "tracking.name=NAME",
    "report_to": "tracking.* (voxtral_exp logs to trackio itself; tracking.enabled=false turns it off)",
    "logging_dir": "hydra.run.dir (the run's log is <run dir>/train.log)",
    "do_train": "nothing: Trainer ignores it and train.py always trains",
    "do_eval": "trainer.eval_strategy and evaluation.* (Trainer ignores do_eval)",
    "do_predict": "evaluation.* (Trainer ignores do_predict)",
    "prediction_loss_only": "evaluation.* (the eval loss comes from the Trainer, WER/CER from generation)",
    "push_to_hub": "`python -m voxtral_exp.push RUN_DIR --repo-id USER/NAME` after training",
    "hub_model_id": "`python -m voxtral_exp.push RUN_DIR --repo-id USER/NAME`",
    "hub_token": "HF_TOKEN in the environment or `hf auth login` (never the config)",
}


@functools.cache
def _trainer_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainingArguments)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


NUMERIC_TRAINER_KEYS = (
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "logging_steps",
    "eval_steps",
    "save_steps",
)


def _trainer_problems(t: DictConfig, hardware: DictConfig) -> list[str]:
    problems = [
        f"trainer.{key}: set by voxtral_exp or ignored by Trainer; use {use}"
        for key, use in NOT_FOR_THE_TRAINER.items()
        if key in t
    ]
    wrong_type = [key for key in NUMERIC_TRAINER_KEYS if t.get(key) is not None and not _is_number(t.get(key))]
    problems += [f"trainer.{key}={t[key]!r}: expected a number" for key in wrong_type]
    if wrong_type:
        return problems
    if not t.learning_rate or t.learning_rate <= 0:
        problems.append(f"trainer.learning_rate={t.learning_rate}: must be > 0 (e.g. 1e-4 for LoRA)")
    epochs = "-1 to train for trainer.num_train_epochs epochs"
    if t.max_steps is None:
        problems.append(f"trainer.max_steps=null: expected a number of steps (>= 1), or {epochs}")
    elif t.max_steps == 0:  # Trainer would train one step, and num_train_epochs would be ignored
        problems.append(f"trainer.max_steps=0 trains nothing: set a number of steps (>= 1), or {epochs}")
    elif t.max_steps != int(t.max_steps) or t.max_steps < -1:  # 0.5 failed after loading; -5 trained epochs
        problems.append(f"trainer.max_steps={t.max_steps}: expected a whole number of steps (>= 1), or {epochs}")
    elif t.max_steps < 0 and (t.num_train_epochs or 0) <= 0:
        problems.append("trainer.max_steps and trainer.num_train_epochs are both <= 0: set one of them")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if t[key] < 1:
            problems.append(f"trainer.{key}={t[key]}: must be >= 1")
    if hardware.device == "cpu" and (t.bf16 or t.get("fp16")):
        problems.append("trainer.bf16/fp16 is on but hardware.device=cpu: use hardware=cpu (fp32) or run on a GPU")
    if hardware.device == "cuda" and not torch.cuda.is_available():
        problems.append("hardware=gpu but torch.cuda.is_available() is False: use hardware=cpu or hardware=auto")
    return problems


def _method_problems(m: DictConfig, t: DictConfig) -> list[str]:
    problems = []
    if m.name == "lora":
        if not isinstance(m.r, int) or isinstance(m.r, bool) or m.r < 1:
            problems.append(f"method.r={m.r!r}: the LoRA rank must be an integer >= 1 (e.g. 8, 16, 32)")
        if not _is_number(m.alpha) or m.alpha <= 0:
            problems.append(f"method.alpha={m.alpha!r}: must be a number > 0 (scaling is alpha / r)")
        if not _is_number(m.dropout) or not 0 <= m.dropout < 1:
            problems.append(f"method.dropout={m.dropout!r}: must be a number in [0, 1)")
        if not m.target_modules:
            problems.append("method.target_modules is empty: name at least one module, e.g. [q_proj, v_proj]")
        if t.get("fsdp"):
            problems.append(
                "trainer=fsdp with method=lora is not supported: sharding is for full fine-tuning, LoRA trains ~1% of "
                "the weights and its frozen base fits one GPU in bf16 (Voxtral-Small-24B: ~48 GB). Run LoRA under "
                "plain torchrun (DDP, without trainer=fsdp), or use method=full with trainer=fsdp"
            )
    return problems


def _model_problems(model: DictConfig) -> list[str]:
    problems = []
    if not model.random_init and not model.name_or_path:
        problems.append(
            f"model.name_or_path is null for model={model.name}: name a checkpoint or set model.random_init=true"
        )
    elif (
        not model.random_init
        and _looks_local(model.name_or_path)
        and not Path(model.name_or_path).expanduser().exists()
    ):
        problems.append(f"model.name_or_path={model.name_or_path}: folder does not exist")
    elif model.random_init and model.name_or_path and _looks_local(model.name_or_path):
        problems.append(
            f"model.name_or_path={model.name_or_path} names a local folder, but model.random_init=true builds random weights "
            f"and would never read it (model={model.name}): add model.random_init=false to load it, or drop it"
        )
    if model.audio_tokens not in AUDIO_TOKEN_MODES:
        problems.append(f"model.audio_tokens={model.audio_tokens}: expected one of {list(AUDIO_TOKEN_MODES)}")
    if model.encoder_window not in AUDIO_TOKEN_MODES:
        problems.append(f"model.encoder_window={model.encoder_window}: expected one of {list(AUDIO_TOKEN_MODES)}")
    elif model.encoder_window == "clip" and model.audio_tokens != "clip":
        problems.append(
            "model.encoder_window=clip needs model.audio_tokens=clip (the encoder reads what the prompt keeps)"
        )
    if model.encoder_positions not in ("sinusoids", "as_built"):
        problems.append(f"model.encoder_positions={model.encoder_positions}: expected sinusoids | as_built")
    if model.dtype not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"model.dtype={model.dtype}: expected auto | float32 | bfloat16 | float16")
    audio = model.audio_config
    if model.random_init and "hidden_size" in audio and audio.get("intermediate_size") != 4 * audio.hidden_size:
        problems.append(
            f"model.audio_config.intermediate_size={audio.get('intermediate_size')}: must be 4 * "
            f"model.audio_config.hidden_size ({4 * audio.hidden_size}); the projector stacks 4 frames"
        )
    return problems


def _realtime_problems(cfg: DictConfig) -> list[str]:
    """A Voxtral Realtime model (model.family=realtime): its delay, and what it cannot use yet."""
    model, problems = cfg.model, []
    if not model.random_init and not model.name_or_path:
        problems.append(
            f"model.name_or_path is null for model={model.name}: name a checkpoint or set model.random_init=true"
        )
    try:
        check_delay(model)
    except DelayError as e:
        problems.append(str(e))
    if model.dtype not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"model.dtype={model.dtype}: expected auto | float32 | bfloat16 | float16")
    if cfg.dataset.get("streaming"):
        problems.append(
            f"model={model.name} trains on word timings read before training: use map-style data (dataset.streaming=false)"
        )
    if not cfg.dataset.prescan:
        problems.append(
            f"dataset.prescan=false: model={model.name} trains on word timings, which the prescan checks (in the "
            "clip, in order, fitting its stream): keep it true"
        )
    if cfg.speed.encoder_cache not in (None, "auto"):
        problems.append(
            f"speed.encoder_cache: model={model.name} encodes audio causally with the text; set it to auto or null"
        )
    return problems


def _speed_problems(speed: DictConfig, m: DictConfig, data: DictConfig) -> list[str]:
    problems = []
    if speed.encoder_cache not in (None, "auto"):  # a folder; auto decides for itself
        if m.name == "full" and not m.freeze_audio_tower:
            problems.append("speed.encoder_cache needs a frozen audio encoder (method.freeze_audio_tower=true)")
        if data.get("streaming"):
            problems.append("speed.encoder_cache works on map-style data, not streams (dataset.streaming=false)")
    return problems


def _evaluation_problems(cfg: DictConfig) -> list[str]:
    problems = []
    t, evaluation = cfg.trainer, cfg.evaluation
    if cfg.objective not in OBJECTIVES:
        problems.append(f"objective={cfg.objective}: expected one of {list(OBJECTIVES)}")
    if cfg.objective != "eval_loss" and not evaluation.wer_at_end:
        problems.append(f"objective={cfg.objective} needs evaluation.wer_at_end=true")
    best = t.get("metric_for_best_model")
    if best in ("eval_wer", "eval_cer", "wer", "cer"):
        if not evaluation.wer_during_training:
            problems.append(f"trainer.metric_for_best_model={best} needs evaluation.wer_during_training=true")
        if t.get("greater_is_better"):
            problems.append(f"trainer.greater_is_better=true with metric_for_best_model={best}: lower WER is better")
    if evaluation.early_stopping_patience and not (t.get("load_best_model_at_end") and best):
        problems.append(
            "evaluation.early_stopping_patience needs trainer.load_best_model_at_end=true and "
            "trainer.metric_for_best_model"
        )
    if evaluation.normalizer not in NORMALIZERS:
        problems.append(f"evaluation.normalizer={evaluation.normalizer}: expected one of {list(NORMALIZERS)}")
    return problems


def _dataset_problems(data: DictConfig, t: DictConfig) -> list[str]:
    problems = []
    kind = data.reader
    if kind == "jsonl":
        for key in ("train_manifest", "eval_manifest"):
            path = data.get(key)
            if path and Path(path).expanduser().is_dir():
                problems.append(f"dataset.{key}={path} is a folder: give the JSONL manifest file in it")
            elif path and not Path(path).expanduser().is_file():
                problems.append(f"dataset.{key}={path}: file not found")
        if not data.train_manifest:
            problems.append("dataset.train_manifest is null: point it at a JSONL manifest")
        if not data.eval_manifest and not 0 < data.eval_fraction < 1:
            problems.append(f"dataset.eval_fraction={data.eval_fraction}: must be in (0, 1) when eval_manifest is null")
    if data.on_error not in ("raise", "skip"):
        problems.append(f"dataset.on_error={data.on_error}: expected raise | skip")
    if data.get("streaming") and (t.max_steps or 0) <= 0:
        problems.append(
            f"dataset={data.name} is streamed (dataset.streaming=true) and a stream has no length: "
            "set trainer.max_steps instead of epochs"
        )
    try:
        language_code(data.get("language"))
    except LanguageError as e:
        problems.append(f"dataset.language: {e}")
    if kind in ("hub", "granary") and _looks_local(data.path) and not Path(data.path).expanduser().exists():
        problems.append(f"dataset.path={data.path}: not found")
    if kind == "granary":
        problems += granary_problems(data)
    return problems


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def resolved_container(cfg: DictConfig) -> dict:
    """The fully resolved config as plain Python, secrets redacted."""
    return redact(OmegaConf.to_container(cfg, resolve=True))

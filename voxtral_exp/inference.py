"""Transcription with a Voxtral: load a model, build the training prompt, generate.

One code path for every place a model reads audio to write text: evaluation during and after
training (voxtral_exp.training.evaluation), `python -m voxtral_exp.transcribe`, the web app's
Try tab. Prompts are the featuriser's (exactly the training prompt); generation is greedy or
beam search, sharded across processes under torchrun / accelerate.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import PartialState
from accelerate.utils import gather_object

from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.languages import language_code
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.errors import UserError
from voxtral_exp.model.audio_path import AUDIO_INPUTS, batch_audio, encoder_window, inner, prompt_embeddings
from voxtral_exp.model.audio_rule import read_rule
from voxtral_exp.model.modeling import load_trained
from voxtral_exp.model.processor import load_processor
from voxtral_exp.realtime import model as realtime
from voxtral_exp.realtime.serve import generate_stream
from voxtral_exp.realtime.stream import StreamFeaturizer
from voxtral_exp.run.record import final_dir

log = logging.getLogger(__name__)


def device_and_dtype() -> tuple[str, torch.dtype]:
    """Where inference runs: a CUDA GPU in bf16 when there is one, else the CPU in fp32."""
    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def load(source: str | Path) -> tuple[torch.nn.Module, Featurizer]:
    """A trained model (run directory, its final/, a merged folder, or a Hub id) on this
    machine's device and dtype, in eval mode, with the featuriser that builds its prompts the way
    it was trained (the rule saved with it: 375 audio tokens per chunk, or the clip's own)."""
    folder = model_source(source)
    device, dtype = device_and_dtype()
    if realtime.saved_is_realtime(folder):  # a Voxtral Realtime model: streams at the delay it trained with
        try:
            processor = realtime.load_processor(folder)
            model = realtime.load_trained(folder, dtype).to(device).eval()
        except OSError as e:
            raise UserError(f"cannot load the model {source}: {e}") from None
        return model, StreamFeaturizer(processor, trained_language(folder))
    try:
        processor = load_processor(folder)
        rule = read_rule(processor, folder)
        model = load_trained(folder, dtype, rule).to(device).eval()
    except OSError as e:  # a Hub id that does not exist or cannot be reached
        raise UserError(f"cannot load the model {source}: {e}") from None
    language = trained_language(folder)  # clips given no language are prompted in it
    return model, Featurizer(processor, folder, language, audio_tokens=rule.audio_tokens)


def trained_language(folder: str) -> str | None:
    """The prompt language the model trained with, for clips given none, logged: `dataset.language`
    (for rows without their own), else the one language its eval rows carried (eval_results.json's
    per_language: the quickstart's lang:en), read beside the run's final/ (also for final/merged).
    None for several languages or none recorded (a Hub id, a folder copied elsewhere): the model
    then detects the language."""
    path = Path(folder).resolve()
    run_dir = next((p.parent for p in (path, path.parent) if p.name == "final"), None)
    saved = run_dir / "resolved_config.yaml" if run_dir else None
    if saved is None or not saved.is_file():
        return None
    language = language_code((yaml.safe_load(saved.read_text()).get("dataset") or {}).get("language"))
    source = "dataset.language"
    if not language:
        try:
            evaluated = set(json.loads((run_dir / "eval_results.json").read_text()).get("per_language", {}))
        except (OSError, ValueError, AttributeError):
            evaluated = set()
        language = next(iter(evaluated)) if len(evaluated) == 1 and evaluated != {"unknown"} else None
        source = "the language of its rows"
    if language:
        log.info(
            "Language <%s>: clips given no language are prompted lang:%s, as %s trained", source, language, run_dir
        )
    return language


def model_source(source: str | Path) -> str:
    """The folder holding a model (a run directory's final/, a final/ or merged folder), or a Hub
    id; a local path that is none of these is refused, saying what is expected."""
    local = Path(source).expanduser()
    if local.exists():
        folder = final_dir(local)
        if not ((folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()):
            raise UserError(
                f"{source} holds no model (config.json or adapter_config.json): give a run directory, its final/, "
                "a merged folder or a Hub id"
            )
        return str(folder)
    if str(source).startswith(("/", ".", "~")) or str(source).count("/") != 1:
        raise UserError(f"{source}: no such run directory or model folder (nor a Hub id, which reads owner/name)")
    return str(source)


def transcribe(
    model: torch.nn.Module,
    featurizer: Featurizer,
    audios: list[np.ndarray],
    languages: list[str | None],
    batch_size: int = 8,
    max_new_tokens: int = 64,
    num_beams: int = 1,
) -> list[str]:
    """Transcripts of 16 kHz mono arrays, with exactly the training prompt (a Realtime model:
    streamed as served, its languages detected)."""
    if isinstance(featurizer, StreamFeaturizer):
        return [generate_stream(model, featurizer, audio).text for audio in audios]
    prompt = lambda i: featurizer.prompt(audios[i], languages[i])  # noqa: E731
    return generate(model, featurizer, prompt, len(audios), batch_size, max_new_tokens, num_beams)[0]


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    featurizer: Featurizer,
    prompt: Callable[[int], dict[str, Any]],
    n: int,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
    synced: bool = False,
) -> tuple[list[str], list[bool]]:
    """Transcripts of ``prompt(0) ... prompt(n - 1)`` (featuriser outputs: prompt ids and mel
    features, or cached encoder states), and for each whether max_new_tokens cut it before EOS.
    ``synced``: every process decodes until all are done (needed when the model is sharded)."""
    tokenizer = featurizer.processor.tokenizer
    options = dict(
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=False,
        synced_gpus=synced,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    was_training = model.training
    model.eval()
    texts, truncated = [], []
    with unsharded_root(model) as module:
        for start in range(0, n, batch_size):
            features = [prompt(i) for i in range(start, min(n, start + batch_size))]
            new_tokens = _generate_batch(module, collate_prompts(features, tokenizer.pad_token_id), options)
            texts += [normalize_transcript(t) for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
            ended = (new_tokens == tokenizer.eos_token_id).any(dim=1).tolist()
            truncated += [new_tokens.shape[1] == max_new_tokens and not e for e in ended]
    model.train(was_training)
    return texts, truncated


def _generate_batch(model: torch.nn.Module, batch: dict[str, torch.Tensor], options: dict) -> torch.Tensor:
    """The new tokens for one left-padded batch of prompts."""
    parameter = next(model.parameters())
    batch = {k: v.to(parameter.device) for k, v in batch.items()}
    if any(key in batch for key in AUDIO_INPUTS):  # voxtral_exp places the audio: the prompt goes in as embeddings
        voxtral = inner(model)
        audio = {key: batch.pop(key, None) for key in AUDIO_INPUTS}
        embeds = prompt_embeddings(
            voxtral, batch["input_ids"], batch.get("input_features"), **audio, encoder_window=encoder_window(model)
        )
        return model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **options)
    batch["input_features"] = batch["input_features"].to(parameter.dtype)
    return model.generate(**batch, **options)[:, batch["input_ids"].shape[1] :]


@contextlib.contextmanager
def unsharded_root(model: torch.nn.Module):
    """The module to call ``generate`` on. An FSDP-wrapped model forwards attribute access to the
    module it wraps, whose own forward would then see the root's sharded weights: gather those
    (embeddings, projector, output layer) for the duration; the wrapped layers gather theirs in
    their forward, as in training."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if not isinstance(model, FSDP):
        yield model
        return
    with FSDP.summon_full_params(model, writeback=False, recurse=False):
        yield model.module


def sharded_generate(
    model: torch.nn.Module,
    featurizer: Featurizer,
    prompt: Callable[[int], dict[str, Any]],
    n: int,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> tuple[list[str], list[bool]]:
    """``generate`` with the examples split across the processes (accelerate's
    ``split_between_processes``) and gathered back in order on every process, so that each
    returns the same lists as one process would. Shares are padded to equal length (accelerate
    repeats a share's last example) and decoding runs until every process is done
    (synced_gpus): every process runs the same number of forward passes, whose collectives (FSDP)
    would otherwise hang."""
    state = PartialState()
    if state.num_processes == 1:
        return generate(model, featurizer, prompt, n, batch_size, max_new_tokens, num_beams)
    with state.split_between_processes(list(range(n)), apply_padding=True) as mine:
        texts, truncated = generate(
            model, featurizer, lambda j: prompt(mine[j]), len(mine), batch_size, max_new_tokens, num_beams, True
        )
    results = dict(zip(mine, zip(texts, truncated)))  # padding repeats an index: one entry each
    gathered = dict(gather_object(list(results.items())))
    return [gathered[i][0] for i in range(n)], [gathered[i][1] for i in range(n)]


def collate_prompts(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pads prompts for batched generation (new tokens are appended on the right)."""
    length = max(len(f["prompt_ids"]) for f in features)
    input_ids = torch.full((len(features), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), length), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["prompt_ids"])
        input_ids[i, length - n :] = f["prompt_ids"]
        attention_mask[i, length - n :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, **batch_audio(features)}

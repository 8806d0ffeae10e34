"""WER/CER by generation: transcribe the eval set with the training prompt and score with jiwer."""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jiwer
import torch
import torch.distributed as dist
from transformers import TrainerCallback
from transformers.models.whisper.english_normalizer import (
    BasicTextNormalizer,
    EnglishTextNormalizer,
)

from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.data.featurize import Featurizer, normalize_transcript
from voxtral_exp.model.modeling import with_cached_audio
from voxtral_exp.training.collator import collate_prompts
from voxtral_exp.training.encoder_cache import EncoderCache

log = logging.getLogger(__name__)


def text_normalizer(name: str) -> Callable[[str], str]:
    """`evaluation.normalizer`: none | basic (lowercase, no punctuation) | whisper_english.

    whisper_english is transformers' Whisper English normaliser without the British->American
    spelling table (that table ships with Whisper checkpoints, not with transformers).
    """
    if name == "none":
        return normalize_transcript
    if name == "basic":
        basic = BasicTextNormalizer()
        return lambda s: " ".join(basic(s).split())
    if name == "whisper_english":
        english = EnglishTextNormalizer({})
        return lambda s: " ".join(english(s).split())
    raise ValueError(f"evaluation.normalizer={name!r}: expected none | basic | whisper_english")


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus WER and CER (errors / reference words or characters). Empty references count
    every hypothesis word as an insertion rather than failing."""
    words = jiwer.process_words(references, hypotheses)
    chars = jiwer.process_characters(references, hypotheses)
    return {"wer": words.wer, "cer": chars.cer}


def transcribe(
    model: torch.nn.Module,
    featurizer: Featurizer,
    audios: list,
    languages: list[str | None],
    batch_size: int = 8,
    max_new_tokens: int = 64,
    num_beams: int = 1,
) -> list[str]:
    """Greedy (or beam) transcripts of 16 kHz mono arrays, with exactly the training prompt."""
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
    """Transcripts of ``prompt(0) ... prompt(n - 1)`` (featurizer outputs: prompt ids and mel
    features, or cached encoder states), and for each whether max_new_tokens cut it before EOS.
    ``synced``: every rank decodes until all are done (needed when the model is sharded)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
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
    with unsharded_root(model) as module:
        texts, truncated = _generate_batches(
            module, featurizer, prompt, n, batch_size, max_new_tokens, options, device, dtype
        )
    model.train(was_training)
    return texts, truncated


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


def _generate_batches(model, featurizer, prompt, n, batch_size, max_new_tokens, options, device, dtype):
    tokenizer = featurizer.processor.tokenizer
    texts, truncated = [], []
    for start in range(0, n, batch_size):
        batch = collate_prompts([prompt(i) for i in range(start, min(n, start + batch_size))], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        if "encoder_states" in batch:  # cached encoder output: the prompt goes in as embeddings
            embeds = with_cached_audio(model, batch)["inputs_embeds"]
            new_tokens = model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **options)
        else:
            batch["input_features"] = batch["input_features"].to(dtype)
            new_tokens = model.generate(**batch, **options)[:, batch["input_ids"].shape[1] :]
        texts += [normalize_transcript(t) for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        ended = (new_tokens == tokenizer.eos_token_id).any(dim=1).tolist()
        truncated += [new_tokens.shape[1] == max_new_tokens and not e for e in ended]
    return texts, truncated


def sharded_generate(
    model: torch.nn.Module,
    featurizer: Featurizer,
    prompt: Callable[[int], dict[str, Any]],
    n: int,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> tuple[list[str], list[bool]]:
    """``generate`` with the examples split across the torch.distributed ranks (every world_size-th
    example each), gathered back in order on every rank, so that each rank returns the same
    lists as one process would. Shares are padded to equal length (the last example again,
    dropped after) and, under FSDP, decoding runs until every rank is done (synced_gpus): every
    rank runs the same number of forward passes, whose collectives would otherwise hang."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return generate(model, featurizer, prompt, n, batch_size, max_new_tokens, num_beams)
    world, rank = dist.get_world_size(), dist.get_rank()
    mine = list(range(rank, n, world))
    share = math.ceil(n / world)
    padded = mine + [mine[-1] if mine else 0] * (share - len(mine))
    texts, truncated = generate(
        model, featurizer, lambda j: prompt(padded[j]), share, batch_size, max_new_tokens, num_beams, synced=True
    )
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (mine, texts[: len(mine)], truncated[: len(mine)]))
    all_texts, all_truncated = [""] * n, [False] * n
    for indices, rank_texts, rank_truncated in gathered:
        for i, text, cut in zip(indices, rank_texts, rank_truncated):
            all_texts[i], all_truncated[i] = text, cut
    return all_texts, all_truncated


def generation_budget(
    featurizer: Featurizer, examples: list[Example], max_new_tokens: int | None, cap: int | None = None
) -> int:
    """`evaluation.max_new_tokens`, or (null) enough for the longest reference: its token count
    (EOS included) plus a quarter, at least 8 more, capped by dataset.filters.max_label_tokens."""
    if max_new_tokens:
        return int(max_new_tokens)
    longest = max((len(featurizer.target(e.text)) for e in examples), default=1)
    budget = longest + max(8, longest // 4)
    return min(budget, cap) if cap else budget


def evaluate_wer(
    model: torch.nn.Module,
    featurizer: Featurizer,
    examples: list[Example],
    cfg,
    max_label_tokens: int | None = None,
    cache: EncoderCache | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, predictions) for `examples`; metrics overall and per language, and how many
    hypotheses the generation budget cut short (eval_truncated). With an encoder cache that
    holds every example, generation starts from the cached encoder output."""
    languages = [e.language or featurizer.default_language for e in examples]
    budget = generation_budget(featurizer, examples, cfg.max_new_tokens, max_label_tokens)
    cached = cache is not None and all(cache.path(e).exists() for e in examples)

    def prompt(i: int) -> dict[str, Any]:
        e = examples[i]
        if cached:
            return featurizer.from_encoder_states(e, cache.get(e))
        return featurizer.prompt(load_audio(e.audio, e.offset, e.duration), languages[i])

    hypotheses, truncated = sharded_generate(
        model, featurizer, prompt, len(examples), cfg.batch_size, budget, cfg.num_beams
    )
    normalize = text_normalizer(cfg.normalizer)
    refs = [normalize(e.text) for e in examples]
    hyps = [normalize(h) for h in hypotheses]
    metrics: dict[str, Any] = {f"eval_{k}": v for k, v in error_rates(refs, hyps).items()}
    metrics["eval_truncated"] = sum(truncated)
    metrics["eval_max_new_tokens"] = budget
    by_language = defaultdict(list)
    for i, lang in enumerate(languages):
        by_language[lang or "unknown"].append(i)
    metrics["per_language"] = {
        lang: {**error_rates([refs[i] for i in ids], [hyps[i] for i in ids]), "n": len(ids)}
        for lang, ids in sorted(by_language.items())
    }
    predictions = [
        {
            "origin": e.origin,
            "language": lang,
            "reference": e.text,
            "hypothesis": h,
            "truncated": cut,
            **error_rates([r], [hn]),
        }
        for e, lang, h, r, hn, cut in zip(examples, languages, hypotheses, refs, hyps, truncated)
    ]
    log.info(
        "WER <evaluation.normalizer=%s>: wer=%.4f cer=%.4f on %d clips",
        cfg.normalizer,
        metrics["eval_wer"],
        metrics["eval_cer"],
        len(examples),
    )
    if any(truncated):
        log.warning(
            "%d of %d hypotheses reached the generation budget (%d new tokens) before EOS "
            "<evaluation.max_new_tokens>; their WER counts the missing words",
            sum(truncated),
            len(examples),
            budget,
        )
    return metrics, predictions


def per_language_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``evaluate_wer``'s per_language block as flat metrics (eval_wer_fr, eval_cer_fr, ...): the
    dashboard takes scalars only."""
    return {
        f"eval_{rate}_{lang}": scores[rate]
        for lang, scores in metrics.get("per_language", {}).items()
        for rate in ("wer", "cer")
    }


class WerCallback(TrainerCallback):
    """WER/CER by generation at every evaluation during training.

    Adds eval_wer / eval_cer (and per language, eval_wer_fr, ...) to the evaluation's metrics in
    place, before best-model selection (trainer.metric_for_best_model=eval_wer) and early stopping
    read them, and logs them.
    """

    def __init__(
        self,
        featurizer: Featurizer,
        examples: list[Example],
        cfg,
        on_metrics: Callable[[dict, int], None],
        max_label_tokens: int | None = None,
        cache: EncoderCache | None = None,
    ):
        self.featurizer = featurizer
        self.examples = examples
        self.cfg = cfg
        self.on_metrics = on_metrics
        self.max_label_tokens = max_label_tokens
        self.cache = cache

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        scores, _ = evaluate_wer(model, self.featurizer, self.examples, self.cfg, self.max_label_tokens, self.cache)
        found = {k: v for k, v in scores.items() if k in ("eval_wer", "eval_cer")} | per_language_metrics(scores)
        metrics.update(found)
        state.log_history.append({**found, "step": state.global_step})
        if state.is_world_process_zero:
            self.on_metrics(found, state.global_step)

"""WER/CER by generation: transcribe the eval set (voxtral_exp.inference) and score with jiwer."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jiwer
import torch
from transformers import TrainerCallback
from transformers.models.whisper.english_normalizer import (
    BasicTextNormalizer,
    EnglishTextNormalizer,
)

from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.inference import sharded_generate
from voxtral_exp.realtime.model import delay_ms
from voxtral_exp.realtime.serve import stream_hypotheses
from voxtral_exp.realtime.stream import StreamFeaturizer
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
    if isinstance(featurizer, StreamFeaturizer):  # a Realtime model: as served, one token per frame
        hypotheses, truncated = stream_hypotheses(model, featurizer, examples)
        budget = None
    else:
        budget = generation_budget(featurizer, examples, cfg.max_new_tokens, max_label_tokens)
        cached = cache is not None and all(cache.holds(e) for e in examples)  # readable, not just there

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
    if budget is None:
        metrics["eval_delay_ms"] = delay_ms(featurizer.processor)  # every figure holds at this delay
    else:
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
        "WER <evaluation.normalizer=%s>: wer=%.4f cer=%.4f on %d clips%s",
        cfg.normalizer,
        metrics["eval_wer"],
        metrics["eval_cer"],
        len(examples),
        f", streaming at a {metrics['eval_delay_ms']} ms delay" if budget is None else "",
    )
    if any(truncated) and budget is None:
        log.warning("%d of %d streams ran out of audio before </s>", sum(truncated), len(examples))
    elif any(truncated):
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

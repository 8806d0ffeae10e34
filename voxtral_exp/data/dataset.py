"""Training datasets: examples are decoded and featurised on access, inside DataLoader workers.

Map-style (`SpeechDataset`) for lists and HF Datasets; streams stay `datasets.IterableDataset`s
(`stream_features`) so that `datasets` shards them across DataLoader workers and processes
without duplicating examples.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from torch.utils.data import Dataset

from voxtral_exp.data.audio import TARGET_RATE, AudioError, header_seconds, load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.filters import ExampleChecker
from voxtral_exp.data.hf import RowAdapter
from voxtral_exp.model.tokens import audio_tokens, chunks
from voxtral_exp.realtime.words import WordTimingError

log = logging.getLogger(__name__)


class SpeechDataset(Dataset):
    """Featurises ``examples[i]`` when the DataLoader (worker) asks for it.

    Files were screened before training; audio that still fails to decode (NaN samples, a
    truncated file) raises with its origin, or with on_error=skip is replaced by the next
    example and logged.
    """

    def __init__(self, examples: Sequence[Example], featurizer: Featurizer, on_error: str = "raise", cache=None):
        self.examples = examples
        self.featurizer = featurizer
        self.on_error = on_error
        self.cache = cache  # an EncoderCache: cached clips skip decoding, mel features, encoder

    def __len__(self) -> int:
        return len(self.examples)

    def length_groups(self) -> list[int]:
        """Per example, the group its training batch is drawn from (speed.group_by_length): its
        30 s chunk count, or with `model.audio_tokens=clip` its audio tokens in bins of 32 (2.56
        s), from the row's duration or the file header (no decoding)."""
        seconds = (header_seconds(e.audio, e.offset, e.duration) for e in self.examples)
        samples = [max(1, round(s * TARGET_RATE)) for s in seconds]
        if self.featurizer.audio_tokens == "clip":
            return [audio_tokens(n, "clip") // 32 for n in samples]
        return [chunks(n) for n in samples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self)):
            features = self.features((index + attempt) % len(self))
            if features is not None:
                return features
        raise AudioError("no example in the dataset could be decoded")

    def features(self, index: int) -> dict[str, Any] | None:
        """``examples[index]`` featurised (from the cache when it holds the clip); None, logged,
        when its audio fails to decode and on_error=skip."""
        example = self.examples[index]
        states = self.cache.get(example) if self.cache is not None else None
        if states is not None:
            return self.featurizer.from_encoder_states(example, states)
        try:
            return self.featurizer(example)
        except (AudioError, FileNotFoundError, WordTimingError) as e:
            if self.on_error == "raise":
                raise AudioError(f"{example.origin}: {e}") from e
            log.warning("Skipping %s: %s <dataset.on_error=skip>", example.origin, e)
            return None


def decodable(examples: list[Example], on_error: str, report: dict[str, Any]) -> list[Example]:
    """The eval examples whose audio decodes, checked once before training: the screen reads
    headers only, and a clip that fails to decode (NaN samples, a cut file) would otherwise stop
    the final WER after all the training (on_error=raise: stop now, naming it), or, skipped by
    SpeechDataset, score the next clip twice (on_error=skip: dropped, counted in
    data_report.json's eval_undecodable)."""
    kept, dropped = [], []
    for example in examples:
        try:
            load_audio(example.audio, example.offset, example.duration)
            kept.append(example)
        except (AudioError, FileNotFoundError) as e:
            if on_error == "raise":
                raise AudioError(f"{example.origin}: {e} (an eval clip; dataset.on_error=skip drops it)") from None
            log.warning("Skipping eval clip %s: %s <dataset.on_error=skip>", example.origin, e)
            dropped.append({"origin": example.origin, "message": str(e)})
    if dropped:
        report["eval_undecodable"] = dropped
    if not kept:
        raise AudioError("no eval clip could be decoded: see data_report.json's eval_undecodable")
    return kept


def stream_features(
    stream: datasets.IterableDataset,
    adapter: RowAdapter,
    featurizer: Featurizer,
    checker: ExampleChecker,
    on_error: str,
    dropped_log: Path | None = None,
) -> datasets.IterableDataset:
    """Rows -> features, lazily; filtered rows vanish and bad rows raise or vanish (on_error).

    Each dropped row is appended to ``dropped_log`` (JSON lines: origin, reason, message) from
    whichever worker process read it; one short append per line keeps the lines whole.
    """

    def drop(origin: str, reason: str, message: str) -> None:
        log.warning("Skipping %s: %s <dataset.on_error=%s>", origin, message, on_error)
        if dropped_log is not None:
            with open(dropped_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"origin": origin, "reason": reason, "message": message}) + "\n")

    def featurize(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {}
        for i, index in enumerate(indices):
            row = {k: v[i] for k, v in batch.items()}
            try:
                example = adapter(row, index)  # index: position in the shuffled stream
                text = example.text.strip()[:40]
                example = dataclasses.replace(example, origin=f"{example.origin} (text {text!r})")
                found = checker(example)
                if found is not None and found.is_error and on_error == "raise":
                    raise AudioError(str(found))
                if found is not None:
                    drop(found.origin, found.reason, found.message)
                    continue
                features = featurizer(example)
            except (AudioError, ValueError) as e:
                if on_error == "raise":
                    raise
                drop(f"{adapter.where} streamed row {index}", "bad_row", str(e))
                continue
            for key, value in features.items():
                out.setdefault(key, []).append(value)
        return out

    return stream.map(featurize, batched=True, batch_size=1, with_indices=True, remove_columns=stream.column_names)

"""Training datasets: examples are decoded and featurised on access, inside DataLoader workers.

Map-style (`SpeechDataset`) for lists and HF Datasets; streams stay `datasets.IterableDataset`s
(`stream_features`) so that `datasets` shards them across DataLoader workers and processes
without duplicating examples.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import datasets
import soundfile as sf
from torch.utils.data import Dataset

from voxtral_exp.collator import Featurizer
from voxtral_exp.data.audio import AudioError
from voxtral_exp.data.example import Example
from voxtral_exp.data.filters import ExampleChecker
from voxtral_exp.data.hf import RowAdapter

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
        self.cache = cache  # an AudioEmbeddingCache: cached clips skip decoding and mel features

    def __len__(self) -> int:
        return len(self.examples)

    def chunk_counts(self) -> list[int]:
        """30 s chunks per example, from the row's duration or the file header (no decoding)."""
        return [math.ceil(max(_seconds(e), 1e-3) / 30.0) for e in self.examples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self)):
            example = self.examples[(index + attempt) % len(self)]
            embeds = self.cache.get(example) if self.cache is not None else None
            if embeds is not None:
                return self.featurizer.from_audio_embeds(example, embeds)
            try:
                return self.featurizer(example)
            except (AudioError, FileNotFoundError) as e:
                if self.on_error == "raise":
                    raise AudioError(f"{example.origin}: {e}") from e
                log.warning("Skipping %s: %s <dataset.on_error=skip>", example.origin, e)
        raise AudioError("no example in the dataset could be decoded")


def _seconds(example: Example) -> float:
    if example.duration is not None:
        return float(example.duration)
    info = sf.info(example.audio if isinstance(example.audio, str) else io.BytesIO(example.audio))
    return info.frames / info.samplerate - (example.offset or 0.0)


def stream_features(
    stream: datasets.IterableDataset, adapter: RowAdapter, featurizer: Featurizer, checker: ExampleChecker,
    on_error: str,
) -> datasets.IterableDataset:
    """Rows -> features, lazily; filtered rows vanish and bad rows raise or vanish (on_error)."""

    def featurize(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {}
        n = len(next(iter(batch.values())))
        for i in range(n):
            row = {k: v[i] for k, v in batch.items()}
            try:
                example = adapter(row, -1)
                found = checker(example)
                if found is not None and (found.is_error and on_error == "raise"):
                    raise AudioError(str(found))
                if found is not None:
                    log.warning("Skipping %s", found)
                    continue
                features = featurizer(example)
            except (AudioError, ValueError) as e:
                if on_error == "raise":
                    raise
                log.warning("Skipping a streamed row: %s <dataset.on_error=skip>", e)
                continue
            for key, value in features.items():
                out.setdefault(key, []).append(value)
        return out

    return stream.map(featurize, batched=True, batch_size=1, remove_columns=stream.column_names)

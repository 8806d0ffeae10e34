"""What every source hands on: ``Data``, a training set plus a finite list of eval Examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
from omegaconf import DictConfig

from voxtral_exp.data.example import Example
from voxtral_exp.data.filters import NoDataError
from voxtral_exp.data.hf import DataSourceError, RowsView
from voxtral_exp.data.splits import limit


@dataclass
class Data:
    train: Sequence[Example] | datasets.IterableDataset  # an IterableDataset yields raw rows
    eval: list[Example]
    adapter: Any = None  # turns streamed rows into Examples (RowAdapter or ExampleRows)
    report: dict[str, Any] = field(default_factory=dict)
    bad_lines: dict[str, list[str]] = field(default_factory=dict)  # "where: why" of rows that are no Example

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, datasets.IterableDataset)


def hf_data(train, evaluation: list[Example], bad_eval: list[str], adapter, cfg: DictConfig, seed: int) -> Data:
    """Data from a `datasets` training split: a stream shuffled in a window, or rows as Examples."""
    bad_lines = {"eval": bad_eval}
    if isinstance(train, datasets.IterableDataset):
        train = train.shuffle(seed=seed, buffer_size=cfg.shuffle_buffer)
        if cfg.max_train_samples:
            train = train.take(cfg.max_train_samples)
        return Data(train=train, eval=evaluation, adapter=adapter, bad_lines=bad_lines)
    return Data(train=limit(RowsView(train, adapter), cfg.max_train_samples), eval=evaluation, bad_lines=bad_lines)


def take(data, adapter, n: int) -> tuple[list[Example], list[str]]:
    """The first n rows as Examples, and the messages of those that are no Example."""
    rows = data.take(n) if isinstance(data, datasets.IterableDataset) else data.select(range(min(n, len(data))))
    examples, bad = [], []
    for index, row in enumerate(rows):
        try:
            examples.append(adapter(row, index))
        except DataSourceError as e:
            bad.append(str(e))
    return examples, bad


def rest_after(data, n: int, where: str, key: str, n_parts: int = 1):
    """``data`` without its first ``n`` rows (held out for eval); refused when nothing is left,
    saying how many rows there are and which key holds them out."""
    if isinstance(data, datasets.IterableDataset):
        rest = data.skip(n)
        if next(iter(rest.take(1)), None) is not None:
            return rest
        total = sum(1 for _ in data.take(n))
    else:
        if len(data) > n:
            return data.select(range(n, len(data)))
        total = len(data)
    spread = f", split across the {n_parts} configs" if n_parts > 1 else ""
    raise NoDataError(
        f"{where}: all of its {total} rows went to eval and none is left to train on: {key} holds out the first "
        f"{n} rows{spread}. Lower {key} (below {total * n_parts}), or add training data"
    )

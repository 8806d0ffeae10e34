"""Turn the `dataset` config group into training and evaluation data.

Every source ends the same way: a training set (map-style and screened up front, or a stream
filtered on the fly) plus a finite list of eval Examples (WER needs a fixed set).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
from omegaconf import DictConfig

from voxtral_exp.data.example import Example
from voxtral_exp.data.filters import ExampleChecker, Finding, screen
from voxtral_exp.data.hf import Columns, RowAdapter, RowsView, iterate_examples, load_split, prepare
from voxtral_exp.data.manifest import read_manifest

log = logging.getLogger(__name__)

LANGUAGE_COLUMN = "__voxtral_language__"  # added to Granary rows: each config is one language


@dataclass
class Data:
    train: Sequence[Example] | datasets.IterableDataset  # an IterableDataset yields raw rows
    eval: list[Example]
    adapter: RowAdapter | None = None  # turns streamed rows into Examples
    report: dict[str, Any] = field(default_factory=dict)
    bad_lines: dict[str, list[str]] = field(default_factory=dict)  # skipped manifest lines per split

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, datasets.IterableDataset)


def load_data(cfg: DictConfig, seed: int, tokenizer=None) -> Data:
    """`dataset` node -> Data; map-style sets are screened (errors raise or skip, filters drop)."""
    loaders = {"jsonl": _jsonl, "hub": _hub, "granary": _granary}
    if cfg.name not in loaders:
        raise ValueError(f"dataset.name={cfg.name!r}: expected one of {sorted(loaders)}")
    data = loaders[cfg.name](cfg, seed)
    checker = ExampleChecker(cfg.filters, tokenizer, decode=False)
    splits = [("eval", data.eval)] + ([] if data.streaming else [("train", data.train)])
    for split, examples in splits:
        if not cfg.prescan:
            continue
        keep, report = screen(examples, checker, cfg.on_error, split)
        for line in data.bad_lines.get(split, []):
            report.add(Finding.bad_line(line))
        data.report[split] = report.as_dict()
        if split == "eval":
            data.eval = [data.eval[i] for i in keep]
        else:
            data.train = data.train.subset(keep) if isinstance(data.train, RowsView) else [data.train[i] for i in keep]
    n_train = "streamed" if data.streaming else len(data.train)
    log.info("Data <dataset=%s>: %s train / %d eval examples", cfg.name, n_train, len(data.eval))
    if not data.eval:
        raise ValueError(f"dataset={cfg.name}: no eval examples left; check the eval split and dataset.filters")
    return data


def _jsonl(cfg: DictConfig, seed: int) -> Data:
    skip = cfg.on_error == "skip"
    train, bad_train = read_manifest(cfg.train_manifest, cfg.audio_root, skip_bad_lines=skip)
    bad_eval = []
    if cfg.eval_manifest:
        evaluation, bad_eval = read_manifest(cfg.eval_manifest, cfg.audio_root, skip_bad_lines=skip)
    else:
        train, evaluation = split_examples(train, cfg.eval_fraction, seed)
    return Data(
        train=_limit(train, cfg.max_train_samples),
        eval=_limit(evaluation, cfg.max_eval_samples),
        bad_lines={"train": bad_train, "eval": bad_eval},
    )


def _hub(cfg: DictConfig, seed: int) -> Data:
    columns = Columns(**cfg.columns)
    where = f"{cfg.path}[{cfg.train_split}]"
    train = prepare(load_split(cfg.path, cfg.train_split, cfg.config, cfg.streaming, cfg.revision), columns, where)
    adapter = RowAdapter(columns, where, cfg.audio_root, cfg.language)
    if cfg.eval_split:
        eval_where = f"{cfg.path}[{cfg.eval_split}]"
        raw = prepare(load_split(cfg.path, cfg.eval_split, cfg.config, cfg.streaming, cfg.revision), columns, eval_where)
        eval_adapter = RowAdapter(columns, eval_where, cfg.audio_root, cfg.language)
        evaluation = _take(raw, eval_adapter, cfg.max_eval_samples)
    elif cfg.streaming:  # hold out the head of the stream
        evaluation = _take(train, adapter, cfg.max_eval_samples)
        train = train.skip(cfg.max_eval_samples)
    else:
        held_out = holdout(len(train), cfg.eval_fraction, seed)
        evaluation = list(RowsView(train, adapter, sorted(held_out)))
        train = RowsView(train, adapter, [i for i in range(len(train)) if i not in held_out])
        return Data(train=_limit(train, cfg.max_train_samples), eval=_limit(evaluation, cfg.max_eval_samples))
    return _finish(train, evaluation, adapter, cfg, seed)


def _granary(cfg: DictConfig, seed: int) -> Data:
    """Granary: one dataset config per language, one split per source corpus; languages are
    mixed by `dataset.weights`. The first max_eval_samples rows of each language are held out."""
    file_columns = Columns(**cfg.columns)
    columns = dataclasses.replace(file_columns, language=LANGUAGE_COLUMN)
    trains, evaluation = [], []
    for language in cfg.languages:
        where = f"{cfg.path}[{language}/{cfg.source}]"
        part = load_split(cfg.path, cfg.source, language, cfg.streaming, cfg.revision)
        part = _with_language(prepare(part, file_columns, where), language)
        adapter = RowAdapter(columns, where, cfg.audio_root)
        n_eval = max(1, cfg.max_eval_samples // len(cfg.languages))
        evaluation += _take(part, adapter, n_eval)
        trains.append(part.skip(n_eval) if cfg.streaming else part.select(range(n_eval, len(part))))
    weights = list(cfg.weights) if cfg.weights else None
    if weights is not None and len(weights) != len(cfg.languages):
        raise ValueError(f"dataset.weights has {len(weights)} entries for {len(cfg.languages)} dataset.languages")
    train = trains[0] if len(trains) == 1 else datasets.interleave_datasets(
        trains, probabilities=_normalise(weights), seed=seed, stopping_strategy="all_exhausted"
    )
    adapter = RowAdapter(columns, f"{cfg.path}[{'+'.join(cfg.languages)}/{cfg.source}]", cfg.audio_root)
    return _finish(train, evaluation, adapter, cfg, seed)


def _finish(train, evaluation: list[Example], adapter: RowAdapter, cfg: DictConfig, seed: int) -> Data:
    if isinstance(train, datasets.IterableDataset):
        train = train.shuffle(seed=seed, buffer_size=cfg.shuffle_buffer)
        if cfg.max_train_samples:
            train = train.take(cfg.max_train_samples)
        return Data(train=train, eval=evaluation, adapter=adapter)
    return Data(train=_limit(RowsView(train, adapter), cfg.max_train_samples), eval=evaluation)


def _with_language(part, language: str):
    if isinstance(part, datasets.IterableDataset):
        return part.map(lambda row: {LANGUAGE_COLUMN: language})
    return part.add_column(LANGUAGE_COLUMN, [language] * len(part))


def _take(data, adapter: RowAdapter, n: int) -> list[Example]:
    if isinstance(data, datasets.IterableDataset):
        return list(iterate_examples(data.take(n), adapter))
    return list(RowsView(data, adapter, list(range(min(n, len(data))))))


def _normalise(weights: list[float] | None) -> list[float] | None:
    if weights is None:
        return None
    total = sum(weights)
    return [w / total for w in weights]


def _limit(examples, n: int | None):
    return examples[:n] if n else examples


def holdout(n: int, eval_fraction: float, seed: int) -> set[int]:
    """Indices of a seeded random `eval_fraction` of n rows (at least one)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return set(order[: max(1, round(n * eval_fraction))])


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded random split; the eval part gets at least one example."""
    eval_ids = holdout(len(examples), eval_fraction, seed)
    return (
        [e for i, e in enumerate(examples) if i not in eval_ids],
        [e for i, e in enumerate(examples) if i in eval_ids],
    )

"""Turn the `dataset` config group into training and evaluation data.

Every source ends the same way: a training set (map-style and screened up front, or a stream
filtered on the fly) plus a finite list of eval Examples (WER needs a fixed set).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
from omegaconf import DictConfig

from voxtral_exp.data.example import Example
from voxtral_exp.data.filters import ExampleChecker, screen
from voxtral_exp.data.hf import (
    Columns,
    DataSourceError,
    ExampleRows,
    RowAdapter,
    RowsView,
    as_example_rows,
    load_split,
    prepare,
)
from voxtral_exp.data.languages import language_code
from voxtral_exp.data.manifest import read_manifest

log = logging.getLogger(__name__)

# NVIDIA Granary (nvidia/Granary, checked against its card, file listing and NVIDIA's
# NeMo-speech-data-processor granary config): one config per <language>_<source>, splits
# `asr` and `ast`, JSONL manifests <lang>/<source>/<lang>_asr*.jsonl with these row keys.
GRANARY_SOURCES = ("yodas", "ytc", "voxpopuli", "librilight")
GRANARY_COLUMNS = Columns(audio="audio_filepath", text="text", language="source_lang", offset="offset",
                          duration="duration", id="utt_id")
# espnet/yodas-granary: the YODAS part with the audio embedded (parquet); configs are language
# names, split `asr_only`.
YODAS_EMBEDDED_COLUMNS = Columns(audio="audio", text="text", duration="duration", id="utt_id")
YODAS_EMBEDDED_SPLIT = "asr_only"
GRANARY_LANGUAGES = {
    "bg": "Bulgarian", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French", "hr": "Croatian", "hu": "Hungarian",
    "it": "Italian", "lt": "Lithuanian", "lv": "Latvian", "mt": "Maltese", "nl": "Dutch", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sv": "Swedish",
    "uk": "Ukrainian",
}  # values: espnet/yodas-granary's config names


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


def load_data(cfg: DictConfig, seed: int, tokenizer=None) -> Data:
    """`dataset` node -> Data; map-style sets are screened (errors raise or skip, filters drop).

    Every problem of a split (malformed manifest lines, rows that are no example, missing or
    unreadable files, empty transcripts) is found in one pass and reported together.
    """
    data = read_data(cfg, seed)
    checker = ExampleChecker(cfg.filters, tokenizer, decode=False) if cfg.prescan else None
    splits = [("eval", data.eval)] + ([] if data.streaming else [("train", data.train)])
    for split, examples in splits:
        keep, report = screen(examples, checker, cfg.on_error, split, data.bad_lines.get(split, []))
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


def read_data(cfg: DictConfig, seed: int) -> Data:
    """The configured data as it is, nothing screened: rows that are no Example are in bad_lines
    (manifests, stream heads) or raise when read (map-style Hub rows)."""
    loaders = {"jsonl": _jsonl, "hub": _hub, "granary": _granary}
    if cfg.reader not in loaders:
        raise ValueError(f"dataset.reader={cfg.reader!r}: expected one of {sorted(loaders)}")
    return loaders[cfg.reader](cfg, seed)


def preflight(cfg: DictConfig) -> None:
    """Checks that need the dataset's metadata but no data: run before anything heavy loads."""
    if cfg.reader == "granary":
        check_granary(cfg)


def _jsonl(cfg: DictConfig, seed: int) -> Data:
    train, bad_train = read_manifest(cfg.train_manifest, cfg.audio_root)
    bad_eval = []
    if cfg.eval_manifest:
        evaluation, bad_eval = read_manifest(cfg.eval_manifest, cfg.audio_root)
    else:
        train, evaluation = split_examples(train, cfg.eval_fraction, seed)
    return Data(
        train=_limit(train, cfg.max_train_samples),
        eval=_limit(evaluation, cfg.max_eval_samples),
        bad_lines={"train": bad_train, "eval": bad_eval},
    )


def _hub(cfg: DictConfig, seed: int) -> Data:
    columns = Columns(**cfg.columns)
    language = language_code(cfg.language)

    def split_of(name: str):
        where = f"{cfg.path}[{name}]"
        raw = load_split(cfg.path, name, cfg.config, cfg.streaming, cfg.revision, cfg.get("data_dir"))
        raw, found, labels = prepare(raw, columns, where)
        return raw, RowAdapter(found, where, cfg.audio_root, language, labels)

    train, adapter = split_of(cfg.train_split)
    bad_eval: list[str] = []
    if cfg.eval_split:
        raw, eval_adapter = split_of(cfg.eval_split)
        evaluation, bad_eval = _take(raw, eval_adapter, cfg.max_eval_samples)
    elif cfg.streaming:  # hold out the head of the stream
        evaluation, bad_eval = _take(train, adapter, cfg.max_eval_samples)
        train = train.skip(cfg.max_eval_samples)
    else:
        held_out = holdout(len(train), cfg.eval_fraction, seed)
        evaluation = RowsView(train, adapter, sorted(held_out))
        train = RowsView(train, adapter, [i for i in range(len(train)) if i not in held_out])
        return Data(train=_limit(train, cfg.max_train_samples), eval=_limit(evaluation, cfg.max_eval_samples))
    return _finish(train, evaluation, bad_eval, adapter, cfg, seed)


@dataclass(frozen=True)
class GranaryPart:
    """One Granary config to read: <language>_<source> manifests, or YODAS with embedded audio."""

    language: str
    source: str
    path: str
    config: str
    split: str
    columns: Columns
    embedded: bool

    @property
    def where(self) -> str:
        return f"{self.path}[{self.config}/{self.split}]"


def granary_parts(cfg: DictConfig) -> list[GranaryPart]:
    """The configs `dataset.languages` x `dataset.source` select, in that order (weights follow it).

    YODAS without `dataset.audio_root` reads espnet/yodas-granary (audio embedded); every other
    part reads nvidia/Granary's manifests and the audio under `dataset.audio_root`.
    """
    parts = []
    for language in (language_code(lang) for lang in cfg.languages):
        for source in granary_sources(cfg):
            if source == "yodas" and not cfg.audio_root:
                parts.append(GranaryPart(language, source, cfg.yodas_audio, GRANARY_LANGUAGES.get(language, language),
                                         YODAS_EMBEDDED_SPLIT, YODAS_EMBEDDED_COLUMNS, embedded=True))
            else:
                parts.append(GranaryPart(language, source, cfg.path, f"{language}_{source}", cfg.task,
                                         GRANARY_COLUMNS, embedded=False))
    return parts


def granary_sources(cfg: DictConfig) -> list[str]:
    return [cfg.source] if isinstance(cfg.source, str) else list(cfg.source)


def check_granary(cfg: DictConfig) -> None:
    """Every selected config and split exists: read from the dataset cards, no data loaded."""
    parts = granary_parts(cfg)
    for path in dict.fromkeys(p.path for p in parts):
        try:
            available = datasets.get_dataset_config_names(path, revision=cfg.revision if path == cfg.path else None)
        except Exception as e:  # noqa: BLE001 - no network, no such repo, unreadable card
            raise DataSourceError(f"dataset=granary: cannot read the configs of {path}: {e}") from e
        missing = [p.config for p in parts if p.path == path and p.config not in available]
        if missing:
            raise DataSourceError(
                f"dataset=granary: {path} has no config {', '.join(missing)} (dataset.languages x dataset.source). "
                f"Configs that exist: {', '.join(sorted(available))}"
            )
    for part in parts:
        splits = datasets.get_dataset_split_names(part.path, part.config)
        if part.split not in splits:
            raise DataSourceError(f"dataset=granary: {part.path} config {part.config} has no split {part.split!r} "
                                  f"(dataset.task); splits: {splits}")


def _granary(cfg: DictConfig, seed: int) -> Data:
    """Granary: one part per <language>_<source> config, mixed by `dataset.weights`; each row's
    language is its `source_lang`, else its config's. The first max_eval_samples rows (split
    across the parts) are held out."""
    parts = granary_parts(cfg)
    n_eval = max(1, cfg.max_eval_samples // len(parts))
    trains, evaluation, bad_eval = [], [], []
    for part in parts:
        raw = load_split(part.path, part.split, part.config, cfg.streaming, cfg.revision if not part.embedded else None)
        raw, columns, labels = prepare(raw, part.columns, part.where)
        adapter = RowAdapter(columns, part.where, None if part.embedded else cfg.audio_root, part.language, labels)
        rows = as_example_rows(raw, adapter)  # one schema for every part, so that they can be mixed
        head, bad = _take(rows, ExampleRows(part.where), n_eval)
        evaluation += head
        bad_eval += bad
        trains.append(rows.skip(n_eval) if cfg.streaming else rows.select(range(min(n_eval, len(rows)), len(rows))))
    weights = list(cfg.weights) if cfg.weights else None
    train = trains[0] if len(trains) == 1 else datasets.interleave_datasets(
        trains, probabilities=_normalise(weights), seed=seed, stopping_strategy="all_exhausted"
    )
    where = f"{cfg.path}[{'+'.join(p.config for p in parts)}]"
    return _finish(train, evaluation, bad_eval, ExampleRows(where), cfg, seed)


def _finish(train, evaluation: list[Example], bad_eval: list[str], adapter, cfg: DictConfig, seed: int) -> Data:
    bad_lines = {"eval": bad_eval}
    if isinstance(train, datasets.IterableDataset):
        train = train.shuffle(seed=seed, buffer_size=cfg.shuffle_buffer)
        if cfg.max_train_samples:
            train = train.take(cfg.max_train_samples)
        return Data(train=train, eval=evaluation, adapter=adapter, bad_lines=bad_lines)
    return Data(train=_limit(RowsView(train, adapter), cfg.max_train_samples), eval=evaluation, bad_lines=bad_lines)


def _take(data, adapter, n: int) -> tuple[list[Example], list[str]]:
    """The first n rows as Examples, and the messages of those that are no Example."""
    rows = data.take(n) if isinstance(data, datasets.IterableDataset) else data.select(range(min(n, len(data))))
    examples, bad = [], []
    for index, row in enumerate(rows):
        try:
            examples.append(adapter(row, index))
        except DataSourceError as e:
            bad.append(str(e))
    return examples, bad


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

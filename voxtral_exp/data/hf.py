"""Hugging Face `datasets` sources: Hub ids, local Hub-format folders, parquet/arrow files and
`save_to_disk` folders all load here, streamed or not, and become Examples row by row.

Audio columns are read with ``Audio(decode=False)``: datasets 5.x decodes only through
torchcodec, which does not work on a plain machine; voxtral_exp decodes with soundfile instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from voxtral_exp.data.example import Example

log = logging.getLogger(__name__)

FILE_LOADERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}


class DataSourceError(ValueError):
    """A dataset that cannot be used as configured; the message names the key or column."""


@dataclass(frozen=True)
class Columns:
    """Which dataset column holds what (`dataset.columns.*`); null = not present."""

    audio: str
    text: str
    language: str | None = None
    offset: str | None = None
    duration: str | None = None


def load_split(
    path: str,
    split: str,
    config: str | None = None,
    streaming: bool = False,
    revision: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a Hub dataset, a local Hub-format folder, data files, or a save_to_disk folder."""
    local = Path(path).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
            data = datasets.load_from_disk(str(local))  # a save_to_disk folder
            if isinstance(data, datasets.DatasetDict):
                data = _pick_split(data, split, path)
            return data.to_iterable_dataset(num_shards=max(1, min(8, len(data) // 64))) if streaming else data
        if local.is_file() or (not local.is_dir() and "*" in path):
            loader = FILE_LOADERS.get(local.suffix)
            if loader is None:
                raise DataSourceError(f"dataset.path={path}: unknown file type; use .parquet, .arrow, .jsonl or .csv")
            return datasets.load_dataset(loader, data_files={split: path}, split=split, streaming=streaming)
        return datasets.load_dataset(path, name=config, split=split, streaming=streaming, revision=revision)
    except (ValueError, FileNotFoundError) as e:
        if isinstance(e, DataSourceError):
            raise
        raise DataSourceError(f"cannot load dataset {path!r} (config {config!r}, split {split!r}): {e}") from e


def _pick_split(data: datasets.DatasetDict, split: str, path: str) -> datasets.Dataset:
    if split not in data:
        raise DataSourceError(f"{path} has no split {split!r}; splits: {sorted(data)} (dataset.train_split / eval_split)")
    return data[split]


def prepare(data, columns: Columns, where: str):
    """Check the configured columns exist and stop `datasets` from decoding audio itself."""
    names = data.column_names or list((data.features or {}).keys())
    if names:
        for key in ("audio", "text", "language", "offset", "duration"):
            column = getattr(columns, key)
            if column is not None and column not in names:
                raise DataSourceError(
                    f"{where}: dataset.columns.{key}={column!r} is not a column; columns are {sorted(names)}"
                )
    features = data.features or {}
    if isinstance(features.get(columns.audio), datasets.Audio):
        data = data.cast_column(columns.audio, datasets.Audio(decode=False))
    return data


class RowAdapter:
    """Turns a dataset row into an Example using the column mapping."""

    def __init__(self, columns: Columns, where: str, audio_root: str | None = None, language: str | None = None):
        self.columns = columns
        self.where = where
        self.audio_root = Path(audio_root).expanduser() if audio_root else None
        self.language = language

    def __call__(self, row: dict[str, Any], index: int) -> Example:
        c = self.columns
        origin = f"{self.where} row {index}"
        if c.audio not in row or c.text not in row:
            raise DataSourceError(f"{origin}: needs columns {c.audio!r} and {c.text!r}; row has {sorted(row)}")
        text = row[c.text]
        if not isinstance(text, str):
            raise DataSourceError(f"{origin}: column {c.text!r} is {type(text).__name__}, expected a string")
        return Example(
            audio=self._audio(row[c.audio], origin),
            text=text,
            language=(row.get(c.language) if c.language else None) or self.language,
            offset=row.get(c.offset) if c.offset else None,
            duration=row.get(c.duration) if c.duration else None,
            origin=origin,
        )

    def _audio(self, value: Any, origin: str) -> str | bytes:
        if isinstance(value, dict):  # an Audio(decode=False) cell: {"bytes": ..., "path": ...}
            if value.get("bytes"):
                return value["bytes"]
            value = value.get("path")
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            if not path.is_absolute() and self.audio_root is not None:
                path = self.audio_root / path
            return str(path)
        raise DataSourceError(f"{origin}: no audio in column {self.columns.audio!r} (got {type(value).__name__})")


class RowsView(Sequence):
    """A map-style dataset seen as a sequence of Examples (rows converted on access)."""

    def __init__(self, data: datasets.Dataset, adapter: RowAdapter, indices: list[int] | None = None):
        self.data = data
        self.adapter = adapter
        self.indices = indices if indices is not None else list(range(len(data)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return RowsView(self.data, self.adapter, self.indices[i])
        return self.adapter(self.data[self.indices[i]], self.indices[i])

    def subset(self, keep: list[int]) -> RowsView:
        return RowsView(self.data, self.adapter, [self.indices[i] for i in keep])


def iterate_examples(data: datasets.IterableDataset, adapter: RowAdapter) -> Iterator[Example]:
    for index, row in enumerate(data):
        yield adapter(row, index)

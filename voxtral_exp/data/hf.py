"""Hugging Face `datasets` sources: Hub ids, local Hub-format folders, parquet/arrow files and
`save_to_disk` folders all load here, streamed or not, and become Examples row by row.

Audio columns are read with ``Audio(decode=False)``: datasets 5.x decodes only through
torchcodec, which does not work on a plain machine; voxtral_exp decodes with soundfile instead.
ClassLabel columns (FLEURS' ``lang_id``, VoxPopuli's ``language``) are read as their label
names, and every language becomes an ISO 639-1 code (voxtral_exp.data.languages).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import datasets

from voxtral_exp.data.example import Example, optional_seconds
from voxtral_exp.data.languages import LanguageError, language_code
from voxtral_exp.errors import UserError

log = logging.getLogger(__name__)

FILE_LOADERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}
OPTIONAL_COLUMNS = ("offset", "duration")  # absent from a dataset = not given for any row


class DataSourceError(UserError, ValueError):
    """A dataset that cannot be used as configured; the message names the key or column."""


@dataclass(frozen=True)
class Columns:
    """Which dataset column holds what (`dataset.columns.*`); null = not present."""

    audio: str
    text: str
    language: str | None = None
    offset: str | None = None
    duration: str | None = None
    id: str | None = None  # a row id for messages (Granary's utt_id)


def load_split(
    path: str,
    split: str,
    config: str | None = None,
    streaming: bool = False,
    revision: str | None = None,
    data_dir: str | None = None,
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
        return datasets.load_dataset(
            path, name=config, split=split, streaming=streaming, revision=revision, data_dir=data_dir
        )
    except ConnectionError as e:  # offline, or the Hub unreachable
        raise DataSourceError(
            f"dataset.path={path}: cannot reach it on the Hugging Face Hub ({e}). Check the network (and that "
            "HF_HUB_OFFLINE is unset), or download the dataset and set dataset.path to the local copy"
        ) from None
    except (ValueError, FileNotFoundError) as e:
        if isinstance(e, DataSourceError):
            raise
        raise DataSourceError(f"cannot load dataset {path!r} (config {config!r}, split {split!r}): {e}") from e


def _pick_split(data: datasets.DatasetDict, split: str, path: str) -> datasets.Dataset:
    if split not in data:
        raise DataSourceError(
            f"{path} has no split {split!r}; splits: {sorted(data)} (dataset.train_split / eval_split)"
        )
    return data[split]


def prepare(data, columns: Columns, where: str):
    """Check the configured columns exist and stop `datasets` from decoding audio itself.

    Returns the dataset, the columns actually present (an absent offset/duration column means
    "from the start" / "read the file header") and the label names of ClassLabel columns.
    """
    names = data.column_names or list((data.features or {}).keys())
    if names:
        for key in ("audio", "text", "language", "id", *OPTIONAL_COLUMNS):
            column = getattr(columns, key)
            if column is None or column in names:
                continue
            if key in OPTIONAL_COLUMNS:
                log.info(
                    "%s: no %r column: clips are read %s",
                    where,
                    column,
                    "from the start" if key == "offset" else "to the end of the file",
                )
                columns = replace(columns, **{key: None})
            else:
                raise DataSourceError(
                    f"{where}: dataset.columns.{key}={column!r} is not a column; columns are {sorted(names)}"
                )
    features = data.features or {}
    if isinstance(features.get(columns.audio), datasets.Audio):
        data = data.cast_column(columns.audio, datasets.Audio(decode=False))
    label_names = {
        name: feature.names for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)
    }
    return data, columns, label_names


class RowAdapter:
    """Turns a dataset row into an Example using the column mapping.

    ``language`` is the language of rows without one (`dataset.language`, or a Granary
    config's language); ``label_names`` decode ClassLabel columns to their names.
    """

    def __init__(
        self,
        columns: Columns,
        where: str,
        audio_root: str | None = None,
        language: str | None = None,
        label_names: dict[str, list[str]] | None = None,
    ):
        self.columns = columns
        self.where = where
        self.audio_root = Path(audio_root).expanduser() if audio_root else None
        self.language = language
        self.label_names = label_names or {}

    def __call__(self, row: dict[str, Any], index: int) -> Example:
        c = self.columns
        origin = f"{self.where} row {index}"
        if c.id and row.get(c.id) is not None:
            origin += f" ({c.id} {row[c.id]})"
        if c.audio not in row or c.text not in row:
            raise DataSourceError(f"{origin}: needs columns {c.audio!r} and {c.text!r}; row has {sorted(row)}")
        text = row[c.text]
        if not isinstance(text, str):
            raise DataSourceError(f"{origin}: column {c.text!r} is {type(text).__name__}, expected a string")
        try:
            language = language_code(self._cell(row, c.language)) or self.language
            offset = optional_seconds(self._cell(row, c.offset), f"column {c.offset!r}")
            duration = optional_seconds(self._cell(row, c.duration), f"column {c.duration!r}")
        except (LanguageError, ValueError) as e:
            raise DataSourceError(f"{origin}: {e}") from None
        return Example(self._audio(row[c.audio], origin), text, language, offset, duration, origin)

    def _cell(self, row: dict[str, Any], column: str | None) -> Any:
        if column is None:
            return None
        value = row.get(column)
        names = self.label_names.get(column)
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            return names[value]  # a ClassLabel: its name ("fr_fr"), not its index
        return value

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


# Every source of a mixture is mapped to these columns first: `datasets.interleave_datasets`
# needs one schema, and Granary's parts differ (paths or embedded audio, "None" durations).
EXAMPLE_FEATURES = datasets.Features(
    {
        "audio_bytes": datasets.Value("binary"),
        "audio_path": datasets.Value("string"),
        "text": datasets.Value("string"),
        "language": datasets.Value("string"),
        "offset": datasets.Value("float64"),
        "duration": datasets.Value("float64"),
        "origin": datasets.Value("string"),
        "error": datasets.Value("string"),
    }
)


def as_example_rows(data, adapter: RowAdapter):
    """``data`` with each row replaced by its Example's fields (lazily for streams). A row that
    cannot become an Example keeps its message in ``error``, raised when it is read."""

    def convert(row: dict[str, Any], index: int) -> dict[str, Any]:
        try:
            example = asdict(adapter(row, index))
        except DataSourceError as e:
            return {
                **{k: None for k in EXAMPLE_FEATURES},
                "text": "",
                "origin": f"{adapter.where} row {index}",
                "error": str(e),
            }
        audio = example.pop("audio")
        example.pop("words")  # Hub rows carry no word timings (voxtral_exp.realtime.words)
        return {
            **example,
            "audio_bytes": audio if isinstance(audio, bytes) else None,
            "audio_path": audio if isinstance(audio, str) else None,
            "error": None,
        }

    return data.map(convert, with_indices=True, remove_columns=data.column_names, features=EXAMPLE_FEATURES)


class ExampleRows:
    """The adapter for rows made by `as_example_rows`."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, row: dict[str, Any], index: int) -> Example:
        if row["error"]:
            raise DataSourceError(row["error"])
        return Example(
            row["audio_bytes"] or row["audio_path"],
            row["text"],
            row["language"],
            row["offset"],
            row["duration"],
            row["origin"],
        )


class RowsView(Sequence):
    """A map-style dataset seen as a sequence of Examples (rows converted on access)."""

    def __init__(self, data: datasets.Dataset, adapter, indices: list[int] | None = None):
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

"""Read local JSONL manifests: voxtral_exp rows or NeMo manifest rows, one example per line.

voxtral_exp: ``{"audio_path": "a.wav", "text": "...", "language": "en", "offset": 0, "duration": 2.1}``
NeMo:        ``{"audio_filepath": "a.wav", "text": "...", "lang": "en", "offset": 0, "duration": 2.1}``
Granary:     ``{"audio_filepath": "a.wav", "text": "...", "source_lang": "it", "duration": "None", ...}``
Any row may carry word timings for Realtime models:
             ``"words": [{"word": "three", "start": 0.52, "end": 0.81}, ...]`` (voxtral_exp.realtime.words)
Relative paths resolve against the manifest's folder, never the working directory.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from voxtral_exp.data.example import Example, optional_seconds
from voxtral_exp.data.languages import LanguageError, language_code
from voxtral_exp.errors import UserError
from voxtral_exp.realtime.words import WordTimingError, parse_words

AUDIO_KEYS = ("audio_path", "audio_filepath")
LANGUAGE_KEYS = ("language", "lang", "source_lang")


class ManifestError(UserError, ValueError):
    """A manifest that cannot be used; the message names the file (and line)."""


def read_manifest(path: str | Path, audio_root: str | Path | None = None) -> tuple[list[Example], list[str]]:
    """Parse every line of ``path`` into (examples, bad lines as "file:line: why").

    Bad lines do not stop the reading: the caller reports them together with every other
    problem of the data (missing files, unreadable audio, ...) in one pass.
    """
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise ManifestError(
            f"manifest {path} is a folder: give the JSONL file (dataset.train_manifest / eval_manifest)"
        )
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist: check dataset.train_manifest / eval_manifest")
    root = Path(audio_root).expanduser().resolve() if audio_root else path.parent
    examples, problems = [], []
    for number, line in enumerate(text_lines(path), start=1):
        where = f"{path}:{number}"
        if isinstance(line, ManifestError):
            problems.append(f"{where}: {line}")
        elif line.strip():
            try:
                examples.append(_parse_row(line, root, where))
            except ManifestError as e:
                problems.append(str(e))
    if not examples and not problems:
        raise ManifestError(f"manifest {path} has no examples (the file is empty)")
    return examples, problems


def text_lines(path: Path) -> Iterator[str | ManifestError]:
    """The manifest's lines as UTF-8 text (a leading byte-order mark is dropped); a line that is
    not UTF-8 comes as a ManifestError saying what it is and how to convert the file."""
    with open(path, "rb") as f:
        start = f.read(4)
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ManifestError(
                f"manifest {path} is UTF-16 (as Windows PowerShell's `>` writes it): save it as UTF-8, e.g. "
                "`Get-Content in.jsonl | Set-Content -Encoding utf8 out.jsonl`, or `iconv -f utf-16 -t utf-8`"
            )
        f.seek(len(codecs.BOM_UTF8) if start.startswith(codecs.BOM_UTF8) else 0)
        for raw in f:
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield ManifestError(
                    f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}; Latin-1 or Windows-1252?): "
                    f"save the manifest as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.jsonl`"
                )


def _parse_row(line: str, root: Path, where: str) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    audio_key = next((k for k in AUDIO_KEYS if k in row), None)
    if audio_key is None or not isinstance(row[audio_key], str) or not row[audio_key]:
        raise ManifestError(f"{where}: no audio path; add one of {list(AUDIO_KEYS)} (keys found: {sorted(row)})")
    if "text" not in row or not isinstance(row["text"], str):
        raise ManifestError(f"{where}: no 'text' string (keys found: {sorted(row)})")
    audio = Path(row[audio_key]).expanduser()
    try:
        # the first language key that holds a value
        language = next(filter(None, (language_code(row.get(k)) for k in LANGUAGE_KEYS)), None)
        offset, duration = (
            optional_seconds(row.get("offset"), "offset"),
            optional_seconds(row.get("duration"), "duration"),
        )
        words = parse_words(row["words"], where) if row.get("words") is not None else None
    except WordTimingError as e:
        raise ManifestError(str(e)) from None
    except (LanguageError, ValueError) as e:
        raise ManifestError(f"{where}: {e}") from None
    return Example(
        audio=str(audio if audio.is_absolute() else root / audio),
        text=row["text"],
        language=language,
        offset=offset,
        duration=duration,
        origin=where,
        words=words,
    )

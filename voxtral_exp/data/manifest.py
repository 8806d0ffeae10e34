"""Read local JSONL manifests: voxtral_exp rows or NeMo manifest rows, one example per line.

voxtral_exp: ``{"audio_path": "a.wav", "text": "...", "language": "en", "offset": 0, "duration": 2.1}``
NeMo:        ``{"audio_filepath": "a.wav", "text": "...", "lang": "en", "offset": 0, "duration": 2.1}``
Relative paths resolve against the manifest's folder, never the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from voxtral_exp.data.example import Example

AUDIO_KEYS = ("audio_path", "audio_filepath")
LANGUAGE_KEYS = ("language", "lang")


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and line."""


def read_manifest(
    path: str | Path, audio_root: str | Path | None = None, skip_bad_lines: bool = False
) -> tuple[list[Example], list[str]]:
    """Parse every line of ``path`` into (examples, bad lines as "file:line: why").

    Bad lines raise one ManifestError listing all of them, unless ``skip_bad_lines``."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist: check dataset.train_manifest / eval_manifest")
    root = Path(audio_root).expanduser().resolve() if audio_root else path.parent
    examples, problems = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                examples.append(_parse_row(line, root, where))
            except ManifestError as e:
                problems.append(str(e))
    if problems and not skip_bad_lines:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError(
            f"{len(problems)} bad line(s) in {path}:\n  {shown}{more}\n"
            "Fix them, or set dataset.on_error=skip to drop and count them."
        )
    if not examples:
        raise ManifestError(f"manifest {path} has no usable examples")
    return examples, problems


def _parse_row(line: str, root: Path, where: str) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    audio_key = next((k for k in AUDIO_KEYS if k in row), None)
    if audio_key is None:
        raise ManifestError(f"{where}: no audio path; add one of {list(AUDIO_KEYS)} (keys found: {sorted(row)})")
    if "text" not in row or not isinstance(row["text"], str):
        raise ManifestError(f"{where}: no 'text' string (keys found: {sorted(row)})")
    audio = Path(row[audio_key]).expanduser()
    language = next((row[k] for k in LANGUAGE_KEYS if row.get(k)), None)
    return Example(
        audio=str(audio if audio.is_absolute() else root / audio),
        text=row["text"],
        language=language,
        offset=row.get("offset"),
        duration=row.get("duration"),
        origin=where,
    )

"""Files voxtral_exp writes: atomically (into a temporary file beside the target, renamed over it
when complete, so a crash or kill never leaves half a file and concurrent ranks or jobs never
read one), and where it caches what it derives once (the offline tokenizer, converted weights)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, for writers that read it); rename it
    to ``path`` when the block succeeds, remove it when the block fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cache_folder(folder: str | Path | None = None) -> Path:
    """``folder``, else $VOXTRAL_EXP_CACHE, else ~/.cache/voxtral_exp."""
    return Path(folder or os.environ.get("VOXTRAL_EXP_CACHE", Path.home() / ".cache" / "voxtral_exp"))


def write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

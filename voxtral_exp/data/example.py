"""One speech example as every data source hands it to the featuriser."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    audio: str | bytes  # a file path, or the encoded file's bytes (embedded audio)
    text: str
    language: str | None = None  # ISO 639-1 code for the prompt; None = let the model detect
    offset: float | None = None  # seconds into the file where the clip starts
    duration: float | None = None  # seconds; None = to the end of the file
    origin: str = ""  # where it came from, for error messages: "file.jsonl:12", "dataset row 7"
    # ((word, start s, end s), ...) from the clip's start: what a Realtime model's stream is built
    # from (voxtral_exp.realtime.words); None when the row has none
    words: tuple[tuple[str, float, float], ...] | None = None


def optional_seconds(value: object, key: str) -> float | None:
    """An optional offset/duration cell: absent, null, "None", "" or NaN mean "not given".

    Published manifests write missing values all these ways (Granary's VoxPopuli rows carry
    ``"duration": "None"``). Anything else must be a non-negative number of seconds.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null", "nan"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{key}={value!r}: expected seconds (a number) or null") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}={value!r}: expected seconds (a number) or null")
    seconds = float(value)
    if math.isnan(seconds):
        return None
    if seconds < 0 or math.isinf(seconds):
        raise ValueError(f"{key}={value!r}: must be a finite number of seconds >= 0")
    return seconds

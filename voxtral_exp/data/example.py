"""One speech example as every data source hands it to the featuriser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    audio: str | bytes  # a file path, or the encoded file's bytes (embedded audio)
    text: str
    language: str | None = None  # ISO 639-1 code for the prompt; None = let the model detect
    offset: float | None = None  # seconds into the file where the clip starts
    duration: float | None = None  # seconds; None = to the end of the file
    origin: str = ""  # where it came from, for error messages: "file.jsonl:12", "dataset row 7"

"""Find what is wrong with an example, and count what was dropped and why.

Two kinds of findings:
- errors (missing or unreadable file, empty or NaN audio, empty transcript, bad row): bad
  data. `dataset.on_error=raise` stops before training with all of them listed; `skip` drops
  and counts them.
- filters (too short, too long, too many label tokens): deliberate limits; always dropped and
  counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxtral_exp.data.audio import (
    TARGET_RATE,
    AudioError,
    audio_name,
    header_seconds,
    load_audio,
)
from voxtral_exp.data.example import Example
from voxtral_exp.data.featurize import target_ids
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.errors import UserError

log = logging.getLogger(__name__)

ERRORS = ("bad_row", "missing_file", "unreadable_audio", "empty_audio", "nan_audio", "empty_text")
FILTERS = ("too_short", "too_long", "too_many_label_tokens")


@dataclass(frozen=True)
class Finding:
    origin: str  # "file.jsonl:12" or "<dataset> row 7"
    reason: str  # one of ERRORS or FILTERS
    message: str

    @classmethod
    def bad_line(cls, text: str) -> Finding:
        """From a manifest problem "file:line: why"."""
        origin, _, message = text.partition(": ")
        return cls(origin, "bad_row", message)

    @property
    def is_error(self) -> bool:
        return self.reason in ERRORS

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"


class DataError(UserError, ValueError):
    """Bad examples found before training; lists every one (up to a limit) and the fix."""

    def __init__(self, findings: list[Finding], split: str):
        self.findings = findings
        shown = "\n  ".join(str(f) for f in findings[:30])
        more = f"\n  ... and {len(findings) - 30} more" if len(findings) > 30 else ""
        super().__init__(
            f"{len(findings)} bad example(s) in the {split} data:\n  {shown}{more}\n"
            "Fix them, or set dataset.on_error=skip to drop and count them "
            "(`python -m voxtral_exp.check` lists every problem without training)."
        )


class ExampleChecker:
    """Checks one example against `dataset.filters` (and, with decode=True, its samples)."""

    def __init__(self, filters, tokenizer=None, decode: bool = False):
        self.min_duration = filters.min_duration
        self.max_duration = filters.max_duration
        self.max_label_tokens = filters.max_label_tokens
        self.tokenizer = tokenizer
        self.decode = decode

    def __call__(self, example: Example) -> Finding | None:
        def finding(reason: str, message: str) -> Finding:
            return Finding(example.origin, reason, message)

        if not normalize_transcript(example.text):
            return finding("empty_text", "empty transcript; remove the row or fill in its text")
        if isinstance(example.audio, str) and not Path(example.audio).is_file():
            return finding(
                "missing_file",
                f"audio file {example.audio} not found; fix the row's path, or "
                "dataset.audio_root (relative paths are joined to it)",
            )
        try:
            duration = self._duration(example)
        except AudioError as e:
            reason = "nan_audio" if "NaN" in str(e) else "empty_audio" if "empty" in str(e) else "unreadable_audio"
            return finding(reason, str(e))
        if duration <= 0:
            return finding("empty_audio", f"audio {audio_name(example.audio)} has no samples")
        if self.min_duration is not None and duration < self.min_duration:
            return finding("too_short", f"{duration:.2f}s < dataset.filters.min_duration={self.min_duration}")
        if self.max_duration is not None and duration > self.max_duration:
            return finding("too_long", f"{duration:.2f}s > dataset.filters.max_duration={self.max_duration}")
        if self.max_label_tokens is not None and self.tokenizer is not None:
            n = len(target_ids(self.tokenizer, example.text))
            if n > self.max_label_tokens:
                return finding(
                    "too_many_label_tokens",
                    f"{n} label tokens > dataset.filters.max_label_tokens={self.max_label_tokens}",
                )
        return None

    def _duration(self, example: Example) -> float:
        """Seconds of audio the example uses: decoded when asked, else from the row or file header."""
        if self.decode:
            return len(load_audio(example.audio, example.offset, example.duration)) / TARGET_RATE
        return header_seconds(example.audio, example.offset, example.duration)


@dataclass
class SplitReport:
    """What happened to one split's examples: seen, kept, dropped by reason, first findings."""

    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)

    def add(self, found: Finding | None) -> None:
        self.total += 1
        if found is None:
            self.kept += 1
            return
        self.dropped[found.reason] += 1
        if len(self.findings) < 100:
            self.findings.append(str(found))

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "kept": self.kept, "dropped": dict(self.dropped), "findings": self.findings}


def screen(
    examples, checker: ExampleChecker | None, on_error: str, split: str, bad_lines: Sequence[str] = ()
) -> tuple[list[int], SplitReport]:
    """Check every example; return the indices to keep and the report.

    ``bad_lines`` are the split's rows that could not even become examples ("where: why").
    Errors raise with on_error=raise, all of them listed together; filters always drop.
    Without a checker (dataset.prescan=false) examples are only built, not screened.
    """
    report, keep, errors = SplitReport(), [], []
    for line in bad_lines:
        found = Finding.bad_line(line)
        report.add(found)
        errors.append(found)
    for i in range(len(examples)):
        try:
            example = examples[i]
        except ValueError as e:  # a row that cannot become an Example (wrong column type, no audio)
            found = Finding(f"{split} row {i}", "bad_row", str(e))
        else:
            found = checker(example) if checker is not None else None
        report.add(found)
        if found is None:
            keep.append(i)
        elif found.is_error:
            errors.append(found)
    if errors and on_error == "raise":
        raise DataError(errors, split)
    if report.dropped:
        log.warning(
            "Data <dataset.on_error=%s>: %s: kept %d of %d, dropped %s",
            on_error,
            split,
            report.kept,
            report.total,
            dict(report.dropped),
        )
    return keep, report

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
import re
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
from voxtral_exp.realtime.words import timing_problem

log = logging.getLogger(__name__)

ERRORS = (
    "bad_row",
    "missing_file",
    "unreadable_audio",
    "empty_audio",
    "nan_audio",
    "empty_text",
    "no_word_timings",
    "bad_word_timings",
)
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
    """Bad examples found before training, in every split at once; lists each (up to a limit)
    and the fix."""

    def __init__(self, findings_by_split: dict[str, list[Finding]]):
        self.findings = [f for findings in findings_by_split.values() for f in findings]
        parts = []
        for split, findings in findings_by_split.items():
            shown = "\n  ".join(str(f) for f in findings[:30])
            more = f"\n  ... and {len(findings) - 30} more" if len(findings) > 30 else ""
            parts.append(f"{len(findings)} bad example(s) in the {split} data:\n  {shown}{more}")
        super().__init__(
            "\n".join(parts) + "\nFix them, or set dataset.on_error=skip to drop and count them "
            "(`python -m voxtral_exp.check` lists every problem without training)."
        )


class NoDataError(UserError, ValueError):
    """A split with no usable example left: the run stops before the model loads."""


class ExampleChecker:
    """Checks one example against `dataset.filters` (and, with decode=True, its samples)."""

    def __init__(self, filters, tokenizer=None, decode: bool = False, stream=None):
        # a Realtime model's run: its StreamBuilder; every example needs word timings that fit its clip
        self.stream = stream
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
            # the header (or the row's duration) first: a 3-hour file is filtered without decoding it
            duration = header_seconds(example.audio, example.offset, example.duration)
            found = self._filters(example, duration)
            if found is None and self.decode:  # then every sample of what is kept: NaN, truncation
                duration = len(load_audio(example.audio, example.offset, example.duration)) / TARGET_RATE
        except AudioError as e:
            reason = "nan_audio" if "NaN" in str(e) else "empty_audio" if "empty" in str(e) else "unreadable_audio"
            return finding(reason, str(e))
        if found is None and duration <= 0:
            return finding("empty_audio", f"audio {audio_name(example.audio)} has no samples")
        if found is None and self.stream is not None:
            found = self._word_timings(example, duration)
        return found

    def _word_timings(self, example: Example, duration: float) -> Finding | None:
        if example.words is None:
            return Finding(
                example.origin,
                "no_word_timings",
                'no word timings: a Realtime model trains on them. Add the row\'s "words", point '
                "dataset.words_ctm at CTM files, or run `python -m voxtral_exp.realtime.align`",
            )
        problem = timing_problem(example.words, duration) or self.stream.fit_problem(example.words, duration)
        said, written = words_of(" ".join(w for w, _, _ in example.words)), words_of(example.text)
        if problem is None and said != written:
            problem = f"its words ({' '.join(said)!r}) are not its text ({' '.join(written)!r}): the stream is built from the words"
        if problem is None:
            return None
        fix = "fix the row's words (or its text), or set dataset.on_error=skip to drop and count it"
        return Finding(example.origin, "bad_word_timings", f"{problem}; {fix}")

    def _filters(self, example: Example, duration: float) -> Finding | None:
        """The first of `dataset.filters` the example fails, or None."""
        if duration <= 0:
            return None  # reported as empty audio
        if self.min_duration is not None and duration < self.min_duration:
            return Finding(
                example.origin, "too_short", f"{duration:.2f}s < dataset.filters.min_duration={self.min_duration}"
            )
        if self.max_duration is not None and duration > self.max_duration:
            return Finding(
                example.origin, "too_long", f"{duration:.2f}s > dataset.filters.max_duration={self.max_duration}"
            )
        if self.max_label_tokens is not None and self.tokenizer is not None:
            n = len(target_ids(self.tokenizer, example.text))
            if n > self.max_label_tokens:
                message = f"{n} label tokens > dataset.filters.max_label_tokens={self.max_label_tokens}"
                return Finding(example.origin, "too_many_label_tokens", message)
        return None


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
    examples, checker: ExampleChecker | None, split: str, bad_lines: Sequence[str] = ()
) -> tuple[list[int], SplitReport, list[Finding]]:
    """Check every example; return the indices to keep, the report and the errors found.

    ``bad_lines`` are the split's rows that could not even become examples ("where: why").
    Filters drop; errors are returned for the caller to raise (all splits together) or skip.
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
    return keep, report, errors


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation: a transcript and its timed words are compared this way."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def summary(report: dict[str, Any]) -> str:
    """A split's report (SplitReport.as_dict) in words: "27 examples, 0 usable (dropped: 27 too_long)"."""
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(report["dropped"].items())) or "none"
    return f"{report['total']} examples, {report['kept']} usable (dropped: {dropped})"

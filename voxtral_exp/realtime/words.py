"""Word timings: where each word of a transcript starts and ends, in seconds from the clip's start.

Three sources, one form (``Example.words``: ((word, start, end), ...)):
- a manifest row's field ``"words": [{"word": "three", "start": 0.52, "end": 0.81}, ...]``;
- CTM files (``utterance channel start duration word [confidence]``, as NeMo Forced Aligner
  writes them, one file per utterance in ``<out>/ctm/words/``, or one file for all), matched to
  rows by utterance id = the audio file's name without extension (`dataset.words_ctm`);
- self-alignment with a Realtime model (voxtral_exp.realtime.align), which writes a manifest with
  the "words" field beside the data.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from voxtral_exp.errors import UserError

Words = tuple[tuple[str, float, float], ...]
FRAME_S = 0.08


class WordTimingError(UserError, ValueError):
    """Word timings that cannot be used; the message names the file and line, or the row."""


def parse_words(value: object, where: str) -> Words:
    """A manifest row's "words" field -> Words; a WordTimingError naming ``where`` if malformed."""
    if not isinstance(value, list):
        raise WordTimingError(f'{where}: "words" must be a list of {{"word", "start", "end"}} objects')
    words = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not {"word", "start", "end"} <= set(item):
            raise WordTimingError(f'{where}: words[{i}] must be an object with "word", "start" and "end" (seconds)')
        word, start, end = item["word"], item["start"], item["end"]
        numbers = all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (start, end)
        )
        if not isinstance(word, str) or not word.strip() or not numbers:
            raise WordTimingError(
                f"{where}: words[{i}] needs a non-empty word and finite start/end seconds, got {item}"
            )
        words.append((word.strip(), float(start), float(end)))
    return tuple(words)


def timing_problem(words: Words, duration: float) -> str | None:
    """Why the timings cannot be trained on (outside the clip, backwards), or None."""
    if not words:
        return "no words in its timings"
    previous = 0.0
    for i, (word, start, end) in enumerate(words):
        if not (math.isfinite(start) and math.isfinite(end)):
            return f"word {i} {word!r} has no finite start and end ({start}, {end})"
        if start < 0 or end > duration + FRAME_S:  # a frame's slack: aligners round to their frame
            return f"word {i} {word!r} at {start:.2f}-{end:.2f} s falls outside the clip (0-{duration:.2f} s)"
        if end < start:
            return f"word {i} {word!r} ends ({end:.2f} s) before it starts ({start:.2f} s)"
        if start < previous:
            return f"word {i} {word!r} starts at {start:.2f} s, before the word before it ({previous:.2f} s)"
        previous = start
    return None


def read_ctm(path: str | Path) -> dict[str, Words]:
    """A CTM file, or a folder of them, -> {utterance id: Words} (in file order). Lines starting
    with ';;' or '#' are comments; a malformed line is an error naming the file and line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WordTimingError(f"dataset.words_ctm={path}: no such file or folder")
    if path.is_dir():  # NeMo Forced Aligner's output folder: its word-level CTMs only (not tokens/, segments/)
        path = next((p for p in (path / "ctm" / "words", path / "words") if p.is_dir()), path)
    files = sorted(path.rglob("*.ctm")) if path.is_dir() else [path]
    if not files:
        raise WordTimingError(f"dataset.words_ctm={path}: the folder holds no .ctm file")
    found: dict[str, list] = {}
    source: dict[str, Path] = {}
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith((";;", "#")):
                continue
            parts = line.split()
            try:
                utterance, start, duration, word = parts[0], float(parts[2]), float(parts[3]), parts[4]
            except (IndexError, ValueError):
                raise WordTimingError(
                    f"{file}:{number}: expected 'utterance channel start duration word', got {line!r}"
                ) from None
            if not (math.isfinite(start) and math.isfinite(duration)) or duration < 0:
                raise WordTimingError(f"{file}:{number}: start and duration must be finite seconds, got {line!r}")
            if source.setdefault(utterance, file) != file:
                raise WordTimingError(
                    f"{file}:{number}: utterance {utterance!r} is in {source[utterance]} too; one file per utterance"
                )
            if word.startswith("<") and word.endswith(">"):  # <eps>, <unk>: no word spoken
                continue
            found.setdefault(utterance, []).append((word, start, round(start + duration, 6)))
    return {utterance: tuple(words) for utterance, words in found.items()}


def attach_ctm(examples: list, timings: dict[str, Words]) -> list:
    """The examples with words from CTM timings (utterance id = audio file stem); an example whose
    row already has words keeps them; one with no CTM entry is left without (the screen counts it).
    Two rows whose files share a name, or a row that is a cut (offset) of its file, are refused:
    a CTM's times cannot tell them apart or are the whole file's."""
    stems: dict[str, str] = {}
    out = []
    for example in examples:
        utterance = Path(example.audio).stem if isinstance(example.audio, str) else None
        if example.words is None and utterance in timings:
            if utterance in stems and stems[utterance] != example.audio:
                raise WordTimingError(
                    f"{example.origin}: its audio {example.audio} and {stems[utterance]} share the name {utterance!r}, "
                    'which is all a CTM utterance id says: rename one, or give the rows their own "words"'
                )
            if example.offset:
                raise WordTimingError(
                    f"{example.origin}: a clip at an offset into its file: CTM times are the whole file's; give the "
                    'row its own "words" (seconds from the clip\'s start)'
                )
            stems[utterance] = example.audio
            example = dataclasses.replace(example, words=timings[utterance])
        out.append(example)
    return out


def words_as_rows(words: Words) -> list[dict]:
    """Words in the manifest field's form."""
    return [{"word": w, "start": round(s, 3), "end": round(e, 3)} for w, s, e in words]

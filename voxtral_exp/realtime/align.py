"""Self-alignment: word timings for a manifest from a Realtime model's own stream.

    python -m voxtral_exp.realtime.align MODEL MANIFEST [--out FILE] [--force]

MODEL: a Realtime run directory, its final/, or a Hub id (mistralai/Voxtral-Mini-4B-Realtime-2602).
Each clip is transcribed in streaming mode (voxtral_exp.realtime.serve); every [STREAMING_WORD]
the model writes at stream frame g marks a word starting in clip frame g (the stream runs the
delay behind the audio, so frame g of the stream is frame g of the clip). The written words are
aligned to the row's reference words by edit distance: a reference word matched or
substituted takes its written word's start; words the model missed are spread evenly between their
aligned neighbours (or the clip's ends). Each word ends where the next starts (the last at the
clip's end). The rows are written once, with a "words" field, to FILE (default: beside the
manifest, <name>.words.jsonl): train on it with dataset.train_manifest=FILE.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
from pathlib import Path

from voxtral_exp.data.audio import TARGET_RATE, AudioError, load_audio
from voxtral_exp.data.manifest import AUDIO_KEYS, read_manifest, text_lines
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.errors import UserError, run_command
from voxtral_exp.files import write_atomic
from voxtral_exp.realtime.words import Words, words_as_rows


def align_words(reference: list[str], written: list[tuple[str, float]], duration: float) -> tuple[Words, int]:
    """Timings for ``reference`` from the model's ``written`` (word, start) pairs; and how many
    reference words got a written word's start (the others are interpolated)."""
    starts: list[float | None] = [None] * len(reference)
    for i, j in aligned_pairs(reference, [w for w, _ in written]):
        starts[i] = written[j][1]
    matched = sum(s is not None for s in starts)
    ordered = 0.0
    for i, start in enumerate(starts):  # written into the padding after the clip, or out of order: kept in it
        if start is not None:
            starts[i] = ordered = min(max(start, ordered), duration)
    filled = interpolate(starts, duration)
    ends = filled[1:] + [duration]
    return tuple((w, s, max(s, e)) for w, s, e in zip(reference, filled, ends)), matched


def aligned_pairs(reference: list[str], written: list[str]) -> list[tuple[int, int]]:
    """(reference index, written index) of the words an edit-distance alignment pairs (equal or
    substituted). A deletion or insertion costs 1, a substitution 1 to 1.5, less for words that
    are spelt alike: where plain Levenshtein has ties ("one two three four" / "one too four x":
    shift every word, or skip "three"), equal words stay paired and a misspelt word pairs with the
    word it resembles, so no word takes a neighbour's time."""

    def substitution(a: str, b: str) -> float:
        a, b = a.lower(), b.lower()
        return 0.0 if a == b else 1.0 + 0.5 * (1 - difflib.SequenceMatcher(None, a, b).ratio())

    n, m = len(reference), len(written)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                cost[i][j] = float(i + j)
                continue
            pair = substitution(reference[i - 1], written[j - 1])
            cost[i][j] = min(cost[i - 1][j - 1] + pair, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + substitution(reference[i - 1], written[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def interpolate(starts: list[float | None], duration: float) -> list[float]:
    """Missing starts spread evenly between the known ones around them (0 and ``duration`` at the ends)."""
    known = [(-1, 0.0)] + [(i, s) for i, s in enumerate(starts) if s is not None] + [(len(starts), duration)]
    out = list(starts)
    for (i, a), (j, b) in zip(known, known[1:]):
        for k in range(i + 1, j):
            out[k] = a + (b - a) * (k - i) / (j - i)
    return [float(s) for s in out]


def align_manifest(model, featurizer, manifest: Path, out: Path) -> dict[str, int]:
    """Write ``out``: the manifest's rows with "words" from the model (audio paths absolute when
    ``out`` is in another folder); returns the counts. A clip that cannot be read stops it, naming
    the row, before anything is written."""
    from voxtral_exp.realtime.serve import generate_stream

    examples, bad = read_manifest(manifest)
    if bad:
        raise UserError("the manifest has rows that cannot be read:\n  " + "\n  ".join(bad[:20]))
    rows = [json.loads(line) for line in text_lines(manifest) if line.strip()]  # as read_manifest reads them
    counts = {"rows": 0, "words": 0, "from_model": 0, "rows_without_any": 0}
    written = []
    for row, example in zip(rows, examples):
        if not normalize_transcript(example.text):
            raise UserError(f"{example.origin}: empty text: there is nothing to align; fill it in or remove the row")
        if isinstance(example.audio, str) and not Path(example.audio).is_file():
            raise UserError(f"{example.origin}: no such audio file {example.audio}")
        try:
            audio = load_audio(example.audio, example.offset, example.duration)
        except AudioError as e:
            raise UserError(f"{example.origin}: {e}") from None
        stream = generate_stream(model, featurizer, audio)
        reference = normalize_transcript(example.text).split()
        words, matched = align_words(reference, stream.words, len(audio) / TARGET_RATE)
        if out.parent.resolve() != manifest.parent.resolve():
            row = {**row, next(k for k in AUDIO_KEYS if k in row): example.audio}
        written.append(json.dumps({**row, "words": words_as_rows(words)}, ensure_ascii=False))
        counts["rows"] += 1
        counts["words"] += len(words)
        counts["from_model"] += matched
        counts["rows_without_any"] += matched == 0 and len(reference) > 0
    write_atomic(out, "\n".join(written) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a Realtime run directory, its final/, or a Hub id")
    parser.add_argument("manifest", type=Path, help="JSONL manifest (audio_path, text)")
    parser.add_argument("--out", type=Path, help="where to write the rows with words (default: <manifest>.words.jsonl)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = args.manifest.expanduser().resolve()
    out = args.out or manifest.with_name(manifest.stem + ".words.jsonl")
    if out.is_dir():
        raise UserError(
            f"--out {out} is a folder: give the file to write, e.g. {out / manifest.with_suffix('').name}.words.jsonl"
        )
    if out.exists() and not args.force:
        raise UserError(f"{out} exists: the timings are written once; --force replaces it")
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.stream import StreamFeaturizer

    model, featurizer = load(args.model)
    if not isinstance(featurizer, StreamFeaturizer):
        raise UserError(f"{args.model} is not a Voxtral Realtime model: self-alignment needs one")
    counts = align_manifest(model, featurizer, manifest, out)
    print(
        f"{out}: {counts['rows']} rows, {counts['words']} words, {counts['from_model']} timed by the model, "
        f"{counts['words'] - counts['from_model']} interpolated; {counts['rows_without_any']} rows got no word from "
        "the model (their times are spread evenly: check or drop them)"
    )
    return 0


if __name__ == "__main__":
    run_command(main)

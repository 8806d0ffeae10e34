"""Transcribe audio files with a fine-tuned (or any) Voxtral model.

    python -m voxtral_exp.transcribe MODEL audio1.wav audio2.flac [--language fr]

MODEL is a run directory, its final/ (full model or LoRA adapter), a merged model folder, or a
Hub id. Prints one line per file: the path, a tab, the transcript. A file that cannot be read is
named on stderr; the others are still transcribed, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voxtral_exp.data.audio import AudioError, load_audio
from voxtral_exp.data.languages import language_code
from voxtral_exp.errors import run_command
from voxtral_exp.inference import load, model_source, transcribe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="run directory, final/ or merged folder, or Hub id")
    parser.add_argument("audio", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    parser.add_argument(
        "--language",
        help="ISO 639-1 code for the prompt; default: the language the run trained with (dataset.language), "
        "else the model detects it",
    )
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    language = language_code(args.language)  # fr, fr_FR, French -> fr; a bad one stops before the model loads
    model_source(args.model)  # a model path that is no model stops here too
    audios, bad = {}, 0
    for path in args.audio:
        try:
            audios[path] = read_clip(path)
        except AudioError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    if audios:
        model, featurizer = load(args.model)
        if language is None and featurizer.default_language:
            print(
                f"language: {featurizer.default_language}, the one the run trained with; --language overrides it",
                file=sys.stderr,
            )
        clips = list(audios.values())
        texts = transcribe(model, featurizer, clips, [language] * len(clips), args.batch_size, args.max_new_tokens)
        for path, text in zip(audios, texts):
            print(f"{path}\t{text}")
    if bad:
        print(f"error: {bad} of {len(args.audio)} file(s) could not be read (named above)", file=sys.stderr)
    return 1 if bad else 0


def read_clip(path: Path):
    """16 kHz mono samples of one file given on the command line; an AudioError naming it if not."""
    if path.is_dir():
        raise AudioError(f"{path} is a folder: give audio files (e.g. {path}/*.wav)")
    if not path.exists():
        raise AudioError(f"{path} does not exist")
    return load_audio(str(path))


if __name__ == "__main__":
    run_command(main)

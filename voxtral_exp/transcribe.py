"""Transcribe audio files with a fine-tuned (or any) Voxtral model.

    python -m voxtral_exp.transcribe MODEL audio1.wav audio2.flac [--language fr]

MODEL is a run directory, its final/ (full model or LoRA adapter), a merged model folder, or a
Hub id. Prints one line per file: the path, a tab, the transcript.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.languages import language_code
from voxtral_exp.errors import run_command
from voxtral_exp.inference import load, transcribe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="run directory, final/ or merged folder, or Hub id")
    parser.add_argument("audio", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--language", help="ISO 639-1 code for the prompt; default: the model detects it")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    model, featurizer = load(args.model)
    audios = [load_audio(str(path)) for path in args.audio]
    language = language_code(args.language)  # fr, fr_FR, French -> fr
    texts = transcribe(model, featurizer, audios, [language] * len(audios), args.batch_size, args.max_new_tokens)
    for path, text in zip(args.audio, texts):
        print(f"{path}\t{text}")


if __name__ == "__main__":
    run_command(main)

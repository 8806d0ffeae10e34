"""Regenerate the bundled speech samples: ``data/sample/`` and ``data/digits/``.

Speech comes from espeak-ng (Debian package ``espeak-ng``). ``data/sample/``: sentences in four
languages and several voices, stored as FLAC at espeak's native 22.05 kHz so the training
pipeline's 16 kHz resampling is exercised on every run. ``data/digits/``: English digit strings
(2-4 digits, six voices, three speeds) for the quickstart, whose eval strings never occur in
training; 16 kHz OGG to keep the repository small. Deterministic: the same text, voices and
splits every time.

    apt-get install espeak-ng && .venv/bin/python scripts/make_sample_data.py
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import soundfile as sf

DATA = Path(__file__).resolve().parent.parent / "data"
OUT = DATA / "sample"

SENTENCES = {
    "en": [
        "the cat sat on the mat",
        "open the window please",
        "it is raining today",
        "we will meet at noon",
        "the train leaves at seven",
        "she reads a book every night",
        "turn left at the next corner",
        "my phone battery is low",
        "the coffee is too hot",
        "please call me tomorrow",
        "the garden is full of flowers",
        "he plays the piano well",
    ],
    "fr": [
        "le chat dort sur le lit",
        "il fait beau ce matin",
        "nous allons au marché",
        "la porte est fermée",
        "je voudrais un café",
        "le train part à midi",
        "elle chante une chanson",
        "ouvre la fenêtre s'il te plaît",
    ],
    "de": [
        "der hund spielt im garten",
        "heute ist das wetter schön",
        "ich trinke gern tee",
        "wir fahren morgen nach berlin",
        "das buch liegt auf dem tisch",
        "die sonne scheint hell",
        "bitte schließ die tür",
        "er kommt um acht uhr",
    ],
    "es": [
        "el perro corre en el parque",
        "hoy hace mucho calor",
        "me gusta la música",
        "la casa es muy grande",
        "vamos a la playa mañana",
        "el libro está en la mesa",
        "ella habla tres idiomas",
        "abre la puerta por favor",
    ],
}
VOICES = ["", "+f3", "+m3", "+f1"]  # espeak-ng variants: default, female, male, female
SPEEDS = [150, 175]  # words per minute
EVAL_EVERY = 4  # every 4th sentence of each language goes to the eval split


def synthesize(text: str, language: str, variant: str, speed: int) -> tuple:
    wav = subprocess.run(
        ["espeak-ng", "-v", language + variant, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return audio, rate


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f1", "en-029"]
DIGIT_SPEEDS = [140, 160, 180]
DIGIT_SPLITS = {"train": 200, "eval": 20}


def make_digits() -> None:
    """data/digits: spoken digit strings, eval strings disjoint from training ones."""
    import random

    import torch
    import torchaudio.functional as AF

    out = DATA / "digits"
    rng = random.Random(0)
    seen: set[str] = set()
    for split, count in DIGIT_SPLITS.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        rows = []
        while len(rows) < count:
            text = " ".join(rng.choice(DIGITS) for _ in range(rng.randint(2, 4)))
            if text in seen:
                continue
            seen.add(text)
            voice, speed = rng.choice(DIGIT_VOICES), rng.choice(DIGIT_SPEEDS)
            audio, rate = synthesize(text, voice.split("+")[0], voice[len(voice.split("+")[0]) :], speed)
            audio = AF.resample(torch.from_numpy(audio), rate, 16000).numpy()
            name = f"{split}/{len(rows):03d}.ogg"
            sf.write(out / name, audio, 16000, format="OGG")
            rows.append({"audio_path": name, "text": text, "language": "en", "duration": round(len(audio) / 16000, 3)})
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        print(f"digits {split}: {len(rows)} clips")


def main() -> None:
    make_digits()
    (OUT / "audio").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict]] = {"train": [], "eval": []}
    for language, sentences in SENTENCES.items():
        for i, text in enumerate(sentences):
            variant = VOICES[i % len(VOICES)]
            speed = SPEEDS[i % len(SPEEDS)]
            audio, rate = synthesize(text, language, variant, speed)
            name = f"audio/{language}_{i:02d}.flac"
            sf.write(OUT / name, audio, rate, format="FLAC")
            split = "eval" if i % EVAL_EVERY == EVAL_EVERY - 1 else "train"
            splits[split].append(
                {
                    "audio_path": name,
                    "text": text,
                    "language": language,
                    "duration": round(len(audio) / rate, 3),
                }
            )
    for split, rows in splits.items():
        with open(OUT / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} clips")


if __name__ == "__main__":
    main()

"""Small local datasets in every supported format, written by the tests themselves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from tests.conftest import SAMPLE


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def encode(audio: np.ndarray, rate: int, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt)
    return buf.getvalue()


def sample_rows(split: str = "train") -> list[dict]:
    """The bundled sample speech rows, with absolute audio paths."""
    rows = [json.loads(line) for line in (SAMPLE / f"{split}.jsonl").read_text().splitlines()]
    for row in rows:
        row["audio_path"] = str(SAMPLE / row["audio_path"])
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def mixed_manifest(folder: Path) -> Path:
    """JSONL with WAV/FLAC/OGG/MP3 at 8-48 kHz, mono and stereo, relative paths."""
    (folder / "clips").mkdir(parents=True)
    specs = [
        ("a.wav", 8000, 1, "WAV"),
        ("b.flac", 44100, 2, "FLAC"),
        ("c.ogg", 22050, 1, "OGG"),
        ("d.mp3", 48000, 2, "MP3"),
    ]
    rows = []
    for i, (name, rate, channels, fmt) in enumerate(specs):
        sf.write(folder / "clips" / name, tone(1.0 + 0.25 * i, rate, channels), rate, format=fmt)
        rows.append({"audio_path": f"clips/{name}", "text": f"clip number {i}", "language": "en"})
    return write_jsonl(folder / "manifest.jsonl", rows)


def nemo_manifest(folder: Path) -> Path:
    """A NeMo manifest whose rows are 1 s segments (offset/duration) of one 4 s file."""
    folder.mkdir(parents=True, exist_ok=True)
    long = np.concatenate([tone(1.0, 16000, freq=200 * (i + 1)) for i in range(4)])
    sf.write(folder / "long.wav", long, 16000)
    rows = [
        {"audio_filepath": "long.wav", "offset": float(i), "duration": 1.0, "text": f"segment {i}", "lang": "fr"}
        for i in range(4)
    ]
    return write_jsonl(folder / "nemo.json", rows)


# `dataset=hub` overrides for the tables below (the group's defaults name LibriSpeech)
HUB_LAYOUT = ["dataset.config=null", "dataset.train_split=train"]
HUB_COLUMNS = [*HUB_LAYOUT, "dataset.columns.text=sentence", "dataset.columns.language=locale"]


def hub_table(rows: list[dict]) -> datasets.Dataset:
    """Hub-style rows: an Audio column holding the encoded bytes, `sentence`, `locale`."""
    table = datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": Path(r["audio_path"]).read_bytes(), "path": None} for r in rows],
            "sentence": [r["text"] for r in rows],
            "locale": [r["language"] for r in rows],
        }
    )
    # cast, not encode: datasets encodes Audio only through torchcodec, which is not installed
    return table.cast_column("audio", datasets.Audio())


def hub_parquet(folder: Path) -> dict[str, Path]:
    """train (two files, so two stream shards) and validation parquet files with embedded audio."""
    folder.mkdir(parents=True, exist_ok=True)
    train = sample_rows("train")
    paths = {
        "train0": folder / "train-0.parquet",
        "train1": folder / "train-1.parquet",
        "validation": folder / "validation.parquet",
    }
    hub_table(train[: len(train) // 2]).to_parquet(paths["train0"])
    hub_table(train[len(train) // 2 :]).to_parquet(paths["train1"])
    hub_table(sample_rows("eval")).to_parquet(paths["validation"])
    return paths


def hub_folder(folder: Path) -> Path:
    """A local folder in Hub layout (README configs) with train and validation splits."""
    hub_parquet(folder / "data")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*.parquet\n"
        "  - split: validation\n    path: data/validation.parquet\n---\n"
    )
    return folder


def _card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose `configs:` map each config's splits to file globs, as on the Hub."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    return "\n".join(lines + ["---", ""])


def _language_rows(language: str) -> list[dict]:
    return [r for r in sample_rows("train") + sample_rows("eval") if r["language"] == language]


def _granary_row(row: dict, audio_filepath: str, source: str, index: int, **extra) -> dict:
    """One manifest row with nvidia/Granary's keys (card, NeMo-speech-data-processor's granary config)."""
    language = row["language"]
    return {
        "audio_filepath": audio_filepath,
        "text": row["text"],
        **extra,
        "utt_id": f"{source}-{language}-{index:05d}",
        "original_source_id": f"src{index // 3}",
        "dataset_source": source,
        "source_lang": language,
        "target_lang": language,
        "answer": row["text"],
        "pnc": "pnc",
        "itn": "itn",
        "timestamp": "notimestamp",
        "diarize": "nodiarize",
        "emotion": "<|emo:undefined|>",
        "decodercontext": "",
    }


def granary_folder(folder: Path) -> tuple[Path, Path]:
    """A replica of nvidia/Granary as published, and the audio folder its manifests point into.

    Returns (manifests folder, audio root). Configs <lang>_<source>: en_voxpopuli and
    fr_voxpopuli (no offset, `"duration": "None"`, a string), fr_ytc and de_ytc (numeric
    durations, no offset), en_yodas and es_yodas (offset + duration into long recordings; es
    split over two files like the big YODAS languages), and an `ast` split (`answer` = an
    English translation) for fr_voxpopuli. The audio root mirrors the audio_filepath values.
    """
    audio_root = folder / "audio"
    configs: dict[str, dict[str, str]] = {}

    def write(language: str, source: str, files: dict[str, list[dict]], ast: list[dict] | None = None):
        base = folder / language / source
        base.mkdir(parents=True, exist_ok=True)
        for name, rows in files.items():
            write_jsonl(base / name, rows)
        pattern = f"{language}_asr.jsonl" if len(files) == 1 else f"{language}_asr_{language}*.jsonl"
        configs[f"{language}_{source}"] = {"asr": f"{language}/{source}/{pattern}"}
        if ast:
            write_jsonl(base / f"{language}_ast-en.jsonl", ast)
            configs[f"{language}_{source}"]["ast"] = f"{language}/{source}/{language}_ast-en.jsonl"

    def per_clip(language: str, source: str, duration) -> list[dict]:
        rows = []
        for i, row in enumerate(_language_rows(language)):
            rel = f"{source}/{language}/{Path(row['audio_path']).stem}.flac"
            (audio_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (audio_root / rel).write_bytes(Path(row["audio_path"]).read_bytes())
            rows.append(_granary_row(row, rel, source, i, duration=duration(row)))
        return rows

    def recordings(language: str) -> list[dict]:
        """YODAS rows: segments (offset, duration) of long recordings, three clips each."""
        rows = []
        clips = _language_rows(language)
        for start in range(0, len(clips), 3):
            rel = f"yodas/{language}/recording{start // 3:02d}.flac"
            (audio_root / rel).parent.mkdir(parents=True, exist_ok=True)
            pieces, offset = [], 0.0
            for i, row in enumerate(clips[start : start + 3], start):
                audio, rate = sf.read(row["audio_path"], dtype="float32")
                audio = _resample_to(audio, rate, 16000)
                pieces += [audio, np.zeros(8000, np.float32)]  # 0.5 s of silence between segments
                rows.append(
                    _granary_row(row, rel, "yodas", i, offset=round(offset, 4), duration=round(len(audio) / 16000, 4))
                )
                offset += (len(audio) + 8000) / 16000
            sf.write(audio_root / rel, np.concatenate(pieces), 16000)
        return rows

    voxpopuli_fr = per_clip("fr", "voxpopuli", lambda row: "None")
    ast = [{**r, "target_lang": "en", "answer": f"(English) {r['text']}"} for r in voxpopuli_fr]
    write("fr", "voxpopuli", {"fr_asr.jsonl": voxpopuli_fr}, ast=ast)
    write("en", "voxpopuli", {"en_asr.jsonl": per_clip("en", "voxpopuli", lambda row: "None")})
    write("fr", "ytc", {"fr_asr.jsonl": per_clip("fr", "ytc", lambda row: row["duration"])})
    write("de", "ytc", {"de_asr.jsonl": per_clip("de", "ytc", lambda row: row["duration"])})
    write("en", "yodas", {"en_asr.jsonl": recordings("en")})
    es = recordings("es")
    write("es", "yodas", {"es_asr_es000.jsonl": es[:5], "es_asr_es001.jsonl": es[5:]})
    (folder / "README.md").write_text(_card(configs))
    return folder, audio_root


def _resample_to(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(audio), rate, target).numpy()


def yodas_granary_folder(folder: Path) -> Path:
    """A replica of espnet/yodas-granary: Granary's YODAS part with the audio embedded.

    Configs named by language (English, Spanish), split `asr_only`, parquet files under
    data/<lang>000/asr_only/, columns audio, text, utt_id, duration, original_audio_id,
    original_audio_offset, lang, task.
    """
    configs = {}
    for language, name in (("en", "English"), ("es", "Spanish")):
        rows = _language_rows(language)
        table = datasets.Dataset.from_dict(
            {
                "audio": [{"bytes": Path(r["audio_path"]).read_bytes(), "path": None} for r in rows],
                "text": [r["text"] for r in rows],
                "utt_id": [f"{language}000-{i:05d}" for i in range(len(rows))],
                "duration": [r["duration"] for r in rows],
                "original_audio_id": [f"video{i // 3}" for i in range(len(rows))],
                "original_audio_offset": [float(i % 3) for i in range(len(rows))],
                "lang": [f"{language}000"] * len(rows),
                "task": ["asr"] * len(rows),
            }
        ).cast_column("audio", datasets.Audio())
        out = folder / "data" / f"{language}000" / "asr_only"
        out.mkdir(parents=True)
        table.to_parquet(out / "00000.parquet")
        configs[name] = {"asr_only": f"data/{language}*/asr_only/*.parquet"}
    (folder / "README.md").write_text(_card(configs))
    return folder


FLEURS_LANG_IDS = ["de_de", "en_us", "es_419", "fr_fr"]  # a few of FLEURS' 102 lang_id names, in its order


def fleurs_folder(folder: Path, config: str = "fr_fr") -> Path:
    """A replica of google/fleurs' parquet export (branch refs/convert/parquet): one folder per
    config, <config>/<split>/0000.parquet, with FLEURS' features (Audio; lang_id a ClassLabel)."""
    language = config.split("_")[0]
    names = {"fr": "French", "en": "English", "de": "German", "es": "Spanish"}
    features = datasets.Features(
        {
            "id": datasets.Value("int32"),
            "num_samples": datasets.Value("int32"),
            "path": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=16000),
            "transcription": datasets.Value("string"),
            "raw_transcription": datasets.Value("string"),
            "gender": datasets.ClassLabel(names=["male", "female", "other"]),
            "lang_id": datasets.ClassLabel(names=FLEURS_LANG_IDS),
            "language": datasets.Value("string"),
            "lang_group_id": datasets.ClassLabel(names=["western_european_we", "eastern_european_ee"]),
        }
    )
    rows = _language_rows(language)
    splits = {"train": rows[2:], "validation": rows[:2]}
    for split, split_rows in splits.items():
        table = datasets.Dataset.from_dict(
            {
                "id": list(range(len(split_rows))),
                "num_samples": [int(r["duration"] * 16000) for r in split_rows],
                "path": [Path(r["audio_path"]).name for r in split_rows],
                "audio": [
                    {"bytes": Path(r["audio_path"]).read_bytes(), "path": Path(r["audio_path"]).name}
                    for r in split_rows
                ],
                "transcription": [r["text"].lower() for r in split_rows],
                "raw_transcription": [r["text"].capitalize() + "." for r in split_rows],
                "gender": [i % 2 for i in range(len(split_rows))],
                "lang_id": [FLEURS_LANG_IDS.index(config)] * len(split_rows),
                "language": [names[language]] * len(split_rows),
                "lang_group_id": [0] * len(split_rows),
            }
        ).cast(features)  # cast, not encode: datasets encodes Audio only through torchcodec
        (folder / config / split).mkdir(parents=True, exist_ok=True)
        table.to_parquet(folder / config / split / "0000.parquet")
    return folder


VOXPOPULI_LANGUAGES = [
    "en",
    "de",
    "fr",
    "es",
    "pl",
    "it",
    "ro",
    "hu",
    "cs",
    "nl",
    "fi",
    "hr",
    "sk",
    "sl",
    "et",
    "lt",
    "en_accented",
]


def voxpopuli_folder(folder: Path, config: str = "de") -> Path:
    """A replica of facebook/voxpopuli's parquet export (branch refs/convert/parquet): large
    splits exported in part (<config>/partial-train/0000.parquet), features as its loading
    script declares them (Audio; language a ClassLabel whose names include en_accented)."""
    language = "en" if config == "en_accented" else config
    features = datasets.Features(
        {
            "audio_id": datasets.Value("string"),
            "language": datasets.ClassLabel(names=VOXPOPULI_LANGUAGES),
            "audio": datasets.Audio(sampling_rate=16000),
            "raw_text": datasets.Value("string"),
            "normalized_text": datasets.Value("string"),
            "gender": datasets.Value("string"),
            "speaker_id": datasets.Value("string"),
            "is_gold_transcript": datasets.Value("bool"),
            "accent": datasets.Value("string"),
        }
    )
    rows = _language_rows(language)
    for split, split_rows in {"partial-train": rows[2:], "validation": rows[:2]}.items():
        table = datasets.Dataset.from_dict(
            {
                "audio_id": [f"20190101-0900-PLENARY-{i}_{language}" for i in range(len(split_rows))],
                "language": [VOXPOPULI_LANGUAGES.index(config)] * len(split_rows),
                "audio": [{"bytes": Path(r["audio_path"]).read_bytes(), "path": None} for r in split_rows],
                "raw_text": [r["text"].capitalize() + "." for r in split_rows],
                "normalized_text": [r["text"] for r in split_rows],
                "gender": ["female"] * len(split_rows),
                "speaker_id": ["1234"] * len(split_rows),
                "is_gold_transcript": [True] * len(split_rows),
                "accent": ["None" if config != "en_accented" else "fr"] * len(split_rows),
            }
        ).cast(features)  # cast, not encode: datasets encodes Audio only through torchcodec
        (folder / config / split).mkdir(parents=True, exist_ok=True)
        table.to_parquet(folder / config / split / "0000.parquet")
    return folder

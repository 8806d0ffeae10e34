"""Small local datasets in every supported format, written by the tests themselves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


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
    specs = [("a.wav", 8000, 1, "WAV"), ("b.flac", 44100, 2, "FLAC"), ("c.ogg", 22050, 1, "OGG"),
             ("d.mp3", 48000, 2, "MP3")]
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
    rows = [{"audio_filepath": "long.wav", "offset": float(i), "duration": 1.0, "text": f"segment {i}", "lang": "fr"}
            for i in range(4)]
    return write_jsonl(folder / "nemo.json", rows)


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
    paths = {"train0": folder / "train-0.parquet", "train1": folder / "train-1.parquet",
             "validation": folder / "validation.parquet"}
    hub_table(train[: len(train) // 2]).to_parquet(paths["train0"])
    hub_table(train[len(train) // 2 :]).to_parquet(paths["train1"])
    hub_table(sample_rows("eval")).to_parquet(paths["validation"])
    return paths


def hub_folder(folder: Path) -> Path:
    """A local folder in Hub layout (README configs) with train and validation splits."""
    paths = hub_parquet(folder / "data")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*.parquet\n"
        "  - split: validation\n    path: data/validation.parquet\n---\n"
    )
    assert paths
    return folder


def granary_folder(folder: Path, embedded: bool) -> Path:
    """Granary layout: configs en and fr, split `yodas`. Manifest form: audio_filepath strings
    into local audio (audio_root) with offset/duration; embedded form: the audio itself."""
    rows = {lang: [r for r in sample_rows("train") + sample_rows("eval") if r["language"] == lang]
            for lang in ("en", "fr")}
    card = ["---", "configs:"]
    for lang, lang_rows in rows.items():
        (folder / lang).mkdir(parents=True)
        if embedded:
            audio = [{"bytes": Path(r["audio_path"]).read_bytes(), "path": None} for r in lang_rows]
        else:
            audio = [str(Path(r["audio_path"]).relative_to(SAMPLE)) for r in lang_rows]
        table = datasets.Dataset.from_dict(
            {"audio_filepath": audio, "offset": [0.0] * len(lang_rows),
             "duration": [r["duration"] for r in lang_rows], "text": [r["text"] for r in lang_rows]}
        )
        if embedded:
            table = table.cast_column("audio_filepath", datasets.Audio())
        table.to_parquet(folder / lang / "yodas-0.parquet")
        card += [f"- config_name: {lang}", "  data_files:", "  - split: yodas", f"    path: {lang}/yodas-*.parquet"]
    (folder / "README.md").write_text("\n".join(card + ["---", ""]))
    return folder

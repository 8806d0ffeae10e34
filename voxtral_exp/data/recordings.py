"""A speech dataset built clip by clip (the web app's Dataset tab), saved as `dataset=jsonl` reads it.

A folder holds the clips as 16 kHz mono FLAC under audio/, their transcripts and languages in
clips.jsonl (the record the app edits), and, when saved, train.jsonl and eval.jsonl:

    python train.py dataset.train_manifest=FOLDER/train.jsonl dataset.eval_manifest=FOLDER/eval.jsonl

Saving again replaces them only if they are exactly what was last saved (their SHA-256 is kept in
manifests.json); manifests from anywhere else are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from voxtral_exp.data.audio import TARGET_RATE, AudioError, load_audio
from voxtral_exp.data.languages import LanguageError, language_code
from voxtral_exp.data.splits import holdout
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.errors import UserError
from voxtral_exp.files import write_atomic

MAX_SECONDS = 30.0  # one Voxtral chunk; longer clips cost a whole extra chunk of audio tokens
SILENCE_DBFS = -50.0  # clips whose loudness (RMS) stays below this are taken for silence


class ClipError(UserError, ValueError):
    """A clip that cannot go into the dataset; the message says what to do."""


@dataclass
class RecordedDataset:
    folder: Path

    def __post_init__(self):
        self.folder = Path(self.folder).expanduser().resolve()

    @property
    def record(self) -> Path:
        return self.folder / "clips.jsonl"

    def clips(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines() if line.strip()]

    def add(self, audio: str | Path | None, text: str, language: str | None) -> dict:
        """Check a recorded or uploaded clip and keep it (as 16 kHz mono FLAC) with its transcript."""
        if not audio:
            raise ClipError("no audio: record a clip or upload a file first")
        text, code = _transcript(text, language)
        try:
            samples = load_audio(str(audio))
        except AudioError as e:
            raise ClipError(f"cannot read {Path(audio).name}: {e}") from None
        seconds = len(samples) / TARGET_RATE
        if seconds > MAX_SECONDS:
            raise ClipError(
                f"{Path(audio).name} is {seconds:.1f} s long: keep clips under {MAX_SECONDS:.0f} s "
                "(one Voxtral chunk); split it into sentences"
            )
        loudness = 20 * math.log10(max(float(np.sqrt(np.mean(samples**2))), 1e-10))
        if loudness < SILENCE_DBFS:
            raise ClipError(
                f"{Path(audio).name} is silence or near-silence ({loudness:.0f} dBFS): check the "
                "microphone and record again, closer to it"
            )
        clips = self.clips()
        number = max((int(c["id"]) for c in clips), default=-1) + 1
        name = f"audio/{number:04d}.flac"
        (self.folder / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(self.folder / name, samples, TARGET_RATE, format="FLAC")
        clip = {"id": number, "audio_path": name, "text": text, "language": code, "duration": round(seconds, 3)}
        self._save([*clips, clip])
        return clip

    def update(self, clip_id: int, text: str, language: str | None) -> dict:
        """Correct a clip's transcript or language."""
        text, code = _transcript(text, language)
        clips = self.clips()
        clip = self._find(clips, clip_id)
        clip.update(text=text, language=code)
        self._save(clips)
        return clip

    def delete(self, clip_id: int) -> None:
        clips = self.clips()
        clip = self._find(clips, clip_id)
        self.audio_file(clip).unlink(missing_ok=True)
        self._save([c for c in clips if c is not clip])

    def audio_file(self, clip: dict) -> Path:
        """The clip's audio file, which must lie in the folder (clips.jsonl is an editable file)."""
        path = (self.folder / clip["audio_path"]).resolve()
        if not path.is_relative_to(self.folder):
            raise ClipError(
                f"clip {clip['id']}: its audio {clip['audio_path']} is outside {self.folder}; fix clips.jsonl"
            )
        return path

    @property
    def written(self) -> Path:
        """manifests.json: the SHA-256 of the train.jsonl / eval.jsonl this class last wrote."""
        return self.folder / "manifests.json"

    def write_manifests(self, eval_fraction: float, seed: int = 0) -> tuple[Path, Path]:
        """train.jsonl and eval.jsonl (a seeded `eval_fraction`, at least one clip each).

        Only manifests this class wrote, unchanged since, are replaced: a train.jsonl or eval.jsonl
        from anywhere else (copied in, edited by hand) is never overwritten; saving is refused."""
        clips = self.clips()
        if len(clips) < 2:
            raise ClipError(f"{len(clips)} clip(s): a dataset needs at least 2 (one to train on, one to evaluate)")
        if not 0 < eval_fraction < 1:
            raise ClipError(f"eval fraction {eval_fraction}: pick a value between 0 and 1, e.g. 0.1")
        held_out = holdout(len(clips), eval_fraction, seed)
        if len(held_out) == len(clips):
            held_out = set(list(held_out)[:-1])
        texts = {}
        for split, rows in (
            ("train", [c for i, c in enumerate(clips) if i not in held_out]),
            ("eval", [c for i, c in enumerate(clips) if i in held_out]),
        ):
            manifest = [{k: c[k] for k in ("audio_path", "text", "language", "duration")} for c in rows]
            texts[f"{split}.jsonl"] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in manifest)
        self._check_replaceable(texts)
        recorded = self._recorded()
        for name, text in texts.items():
            # each hash is recorded once its manifest is on disk, never before: a save cut short (a
            # full disk, a kill) leaves no hash of a manifest that is not there
            write_atomic(self.folder / name, text)
            recorded[name] = _sha256(text.encode())
            write_atomic(self.written, json.dumps(recorded) + "\n")
        return self.folder / "train.jsonl", self.folder / "eval.jsonl"

    def _check_replaceable(self, texts: dict[str, str]) -> None:
        """Refuse when a manifest of ``texts`` ({name: what this save writes}) exists but is neither
        what this class last wrote nor, byte for byte, what it writes now (a save cut short between
        a manifest and its hash left exactly that)."""
        ours = self._recorded()
        theirs = []
        for name, text in texts.items():
            path = self.folder / name
            if path.exists() and _sha256(path.read_bytes()) not in (ours.get(name), _sha256(text.encode())):
                theirs.append(name)
        if theirs:
            raise ClipError(
                f"{self.folder} already holds {' and '.join(theirs)}, not written from these clips by this app (or "
                "changed since): kept as they are. Move or rename them, or save the dataset in another folder"
            )

    def _recorded(self) -> dict[str, str]:
        """manifests.json: {name: SHA-256} ({} before the first save)."""
        try:
            return json.loads(self.written.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _find(self, clips: list[dict], clip_id: int) -> dict:
        for clip in clips:
            if int(clip["id"]) == int(clip_id):
                return clip
        raise ClipError(f"no clip {clip_id} in {self.folder}")

    def _save(self, clips: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.record, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in clips))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_prompts(path: str | Path) -> list[str]:
    """Sentences to read aloud, one per line of a text file (blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(
            f"cannot read prompts from {Path(path).name}: {e}; give a UTF-8 text file, one prompt a line"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _transcript(text: str | None, language: str | None) -> tuple[str, str | None]:
    """A clip's transcript (whitespace normalised, not empty) and its ISO 639-1 language."""
    text = normalize_transcript(text or "")
    if not text:
        raise ClipError("empty transcript: type what is said in the clip")
    try:
        return text, language_code(language)
    except LanguageError as e:
        raise ClipError(f"{e}; pick one such as en, fr, de") from None

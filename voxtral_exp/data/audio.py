"""Decode audio from a path or bytes to 16 kHz mono float32, without torchcodec or FFmpeg.

soundfile's wheel bundles libsndfile (WAV, FLAC, OGG, MP3); resampling is torchaudio's
functional ``resample``, which is plain torch.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from voxtral_exp.errors import UserError

TARGET_RATE = 16000


class AudioError(UserError, ValueError):
    """Audio that cannot be used for training; the message says which file and why."""


def load_audio(
    source: str | Path | bytes,
    offset: float | None = None,
    duration: float | None = None,
    sampling_rate: int = TARGET_RATE,
) -> np.ndarray:
    """Read ``source`` (path or encoded bytes), crop to ``offset``/``duration`` seconds,
    down-mix to mono and resample to ``sampling_rate``."""
    name = audio_name(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with sf.SoundFile(handle) as f:
            rate = f.samplerate
            start = int(round((offset or 0.0) * rate))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration is None else int(round(duration * rate))
            audio = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot decode audio {name}: {e}. Convert it to WAV/FLAC/OGG/MP3.") from e
    if audio.shape[0] == 0:
        raise AudioError(f"audio {name} is empty (0 samples after offset={offset}, duration={duration})")
    if not np.isfinite(audio).all():
        raise AudioError(f"audio {name} contains NaN or infinite samples")
    mono = audio.mean(axis=1)
    if rate != sampling_rate:
        mono = AF.resample(torch.from_numpy(mono), rate, sampling_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_name(source: str | Path | bytes) -> str:
    """How error messages name an audio source."""
    return "<embedded audio bytes>" if isinstance(source, bytes) else str(source)


def header_seconds(source: str | Path | bytes, offset: float | None = None, duration: float | None = None) -> float:
    """Seconds of audio a clip uses: its `duration`, else read from the file header (no decoding)."""
    if duration is not None:
        return float(duration)
    try:
        info = sf.info(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"cannot read audio {audio_name(source)}: {e}") from e
    return info.frames / info.samplerate - (offset or 0.0)

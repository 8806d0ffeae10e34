"""Voxtral's log-mel input features, computed only over the audio that is there.

The processor pads every clip with zeros to a whole number of 30 s chunks and runs the STFT
over all of it: a 2 s clip costs a 30 s spectrogram. Zero frames have a known value (the
floor of Whisper's log-mel normalisation), so this computes the spectrogram of the clip plus
one window of zeros and fills the rest with that floor. The result equals
``VoxtralProcessor.apply_transcription_request(...)["input_features"]`` to float rounding
(tests/test_features.py checks it across lengths), at a fraction of the cost.
"""

from __future__ import annotations

import io
import math

import numpy as np
import soundfile as sf
import torch
from transformers import WhisperFeatureExtractor

LOG_FLOOR = -10.0  # log10 of the 1e-10 clamp: what an all-zero frame becomes


def pcm16_roundtrip(audio: np.ndarray, sampling_rate: int = 16000) -> np.ndarray:
    """The processor hands arrays to mistral-common as 16-bit WAV; do the same round trip so
    training sees exactly what inference through the processor sees."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, sampling_rate, format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


class LogMel:
    """(n_chunks, n_mels, frames_per_chunk) features for 16 kHz mono audio."""

    def __init__(self, feature_extractor: WhisperFeatureExtractor):
        self.n_fft = feature_extractor.n_fft
        self.hop = feature_extractor.hop_length
        self.chunk_samples = feature_extractor.n_samples  # 30 s
        self.frames_per_chunk = self.chunk_samples // self.hop
        self.window = torch.hann_window(self.n_fft)
        self.mel_filters = torch.from_numpy(np.asarray(feature_extractor.mel_filters)).float()

    def n_chunks(self, n_samples: int) -> int:
        return max(1, math.ceil(n_samples / self.chunk_samples))

    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        n_chunks = self.n_chunks(len(audio))
        total_samples = n_chunks * self.chunk_samples
        total_frames = n_chunks * self.frames_per_chunk
        # Enough zeros that every frame touching real audio sees what it sees in the full
        # padded signal (the STFT's reflect padding at the end then reflects zeros too).
        length = min(total_samples, len(audio) + self.n_fft + self.hop)
        waveform = torch.zeros(length)
        waveform[: len(audio)] = torch.from_numpy(audio)
        stft = torch.stft(waveform, self.n_fft, self.hop, window=self.window, return_complex=True)
        exact = total_frames if length == total_samples else (length - self.n_fft // 2) // self.hop + 1
        magnitudes = (stft[..., : min(exact, total_frames)].abs() ** 2).contiguous()
        log_spec = torch.full((self.mel_filters.shape[1], total_frames), LOG_FLOOR)
        log_spec[:, : magnitudes.shape[1]] = torch.clamp(self.mel_filters.T @ magnitudes, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec.reshape(-1, n_chunks, self.frames_per_chunk).transpose(0, 1).contiguous()

"""Featurise examples into Voxtral transcription sequences.

A training sequence is the processor's transcription prompt followed by the transcript:

    <s>[INST][BEGIN_AUDIO][AUDIO]*375k[/INST]lang:xx[TRANSCRIBE] text tokens </s>

The featuriser runs per example inside DataLoader workers (audio decoding, resampling, mel
features, tokenisation), so the training process never waits on audio work; the collator
(voxtral_exp.training.collator) only pads. Generation uses the very same prompt
(``Featurizer.prompt``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import VoxtralProcessor

from voxtral_exp.data.audio import TARGET_RATE, load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.data.logmel import LogMel, pcm16_roundtrip
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.model.tokens import AUDIO_TOKENS_PER_CHUNK


def target_ids(tokenizer, text: str) -> list[int]:
    """The transcript's token ids followed by EOS, so the model learns to stop."""
    return [*tokenizer.encode(normalize_transcript(text), add_special_tokens=False), tokenizer.eos_token_id]


class Featurizer:
    """Example -> {"prompt_ids", "target_ids", "input_features"} (plain tensors, picklable).

    Equal to the processor's ``apply_transcription_request`` output, but faster: the prompt's
    token ids depend only on the chunk count and language (cached), and the mel features are
    computed over the clip, not its 30 s padding (voxtral_exp.data.logmel).
    """

    def __init__(self, processor: VoxtralProcessor, model_id: str, default_language: str | None = None):
        self.processor = processor
        self.model_id = model_id
        self.default_language = default_language
        self.log_mel = LogMel(processor.feature_extractor)
        self._prompt_ids: dict[tuple[int, str | None], torch.Tensor] = {}

    def prompt(self, audio, language: str | None) -> dict[str, torch.Tensor]:
        """Prompt ids (1-D) and mel features (n_chunks, 128, 3000) for 16 kHz mono ``audio``."""
        audio = pcm16_roundtrip(audio, TARGET_RATE)
        language = language or self.default_language
        return {
            "prompt_ids": self.prompt_ids(self.log_mel.n_chunks(len(audio)), language),
            "input_features": self.log_mel(audio),
        }

    def prompt_ids(self, n_chunks: int, language: str | None) -> torch.Tensor:
        """The processor's transcription prompt for ``n_chunks`` chunks of audio (cached)."""
        key = (n_chunks, language)
        if key not in self._prompt_ids:
            silence = np.zeros(n_chunks * self.log_mel.chunk_samples, dtype=np.float32)
            out = self.processor.apply_transcription_request(
                language=language, audio=silence, sampling_rate=TARGET_RATE, format="wav", model_id=self.model_id
            )
            self._prompt_ids[key] = out["input_ids"][0]
        return self._prompt_ids[key]

    def target(self, text: str) -> torch.Tensor:
        return torch.tensor(target_ids(self.processor.tokenizer, text), dtype=torch.long)

    def __call__(self, example: Example) -> dict[str, Any]:
        audio = load_audio(example.audio, example.offset, example.duration)
        return self._complete(self.prompt(audio, example.language), example)

    def from_encoder_states(self, example: Example, states: torch.Tensor) -> dict[str, Any]:
        """Features for a clip whose encoder output is cached: no audio work at all."""
        n_chunks = states.shape[0] // AUDIO_TOKENS_PER_CHUNK
        prompt = {
            "prompt_ids": self.prompt_ids(n_chunks, example.language or self.default_language),
            "encoder_states": states,
        }
        return self._complete(prompt, example)

    def _complete(self, features: dict[str, Any], example: Example) -> dict[str, Any]:
        features["target_ids"] = self.target(example.text)
        features["language"] = example.language or self.default_language
        features["text"] = example.text
        return features

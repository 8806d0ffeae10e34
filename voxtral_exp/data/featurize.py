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
from voxtral_exp.model.tokens import AUDIO_TOKEN_ID, audio_tokens


def target_ids(tokenizer, text: str) -> list[int]:
    """The transcript's token ids followed by EOS, so the model learns to stop."""
    return [*tokenizer.encode(normalize_transcript(text), add_special_tokens=False), tokenizer.eos_token_id]


class Featurizer:
    """Example -> {"prompt_ids", "target_ids", "input_features"} (plain tensors, picklable), and
    with `model.audio_tokens=clip` the clip's token count ("audio_tokens").

    Equal to the processor's ``apply_transcription_request`` output (``audio_tokens="chunk"``),
    but faster: the prompt's token ids depend only on the audio token count and language
    (cached), and the mel features are computed over the clip, not its 30 s padding
    (voxtral_exp.data.logmel). With ``audio_tokens="clip"`` the prompt holds the [AUDIO] tokens
    that cover the clip (voxtral_exp.model.tokens), in the same layout.
    """

    def __init__(
        self,
        processor: VoxtralProcessor,
        model_id: str,
        default_language: str | None = None,
        audio_tokens: str = "chunk",
    ):
        self.processor = processor
        self.model_id = model_id
        self.default_language = default_language
        self.audio_tokens = audio_tokens  # model.audio_tokens: chunk | clip
        self.log_mel = LogMel(processor.feature_extractor)
        self._prompt_ids: dict[tuple[int, str | None], torch.Tensor] = {}

    def prompt(self, audio, language: str | None) -> dict[str, Any]:
        """Prompt ids (1-D), mel features (n_chunks, mels, 3000) and, in clip mode, the clip's
        audio token count, for 16 kHz mono ``audio``."""
        audio = pcm16_roundtrip(audio, TARGET_RATE)
        n_tokens = audio_tokens(len(audio), self.audio_tokens)
        features = {
            "prompt_ids": self.prompt_ids(n_tokens, language or self.default_language),
            "input_features": self.log_mel(audio),
            "samples": len(audio),
        }
        if self.audio_tokens == "clip":
            features["audio_tokens"] = n_tokens
        return features

    def prompt_ids(self, n_tokens: int, language: str | None) -> torch.Tensor:
        """The processor's transcription prompt with ``n_tokens`` [AUDIO] tokens (cached): the
        processor's own for one chunk, its [AUDIO] run resized (the processor makes 375 per chunk)."""
        key = (n_tokens, language)
        if key not in self._prompt_ids:
            one_chunk = self._processor_prompt(language)
            audio = (one_chunk == AUDIO_TOKEN_ID).nonzero().flatten()
            start, end = int(audio[0]), int(audio[-1]) + 1
            run = torch.full((n_tokens,), AUDIO_TOKEN_ID, dtype=one_chunk.dtype)
            self._prompt_ids[key] = torch.cat([one_chunk[:start], run, one_chunk[end:]])
        return self._prompt_ids[key]

    def _processor_prompt(self, language: str | None) -> torch.Tensor:
        silence = np.zeros(self.log_mel.chunk_samples, dtype=np.float32)
        out = self.processor.apply_transcription_request(
            language=language, audio=silence, sampling_rate=TARGET_RATE, format="wav", model_id=self.model_id
        )
        return out["input_ids"][0]

    def target(self, text: str) -> torch.Tensor:
        return torch.tensor(target_ids(self.processor.tokenizer, text), dtype=torch.long)

    def __call__(self, example: Example) -> dict[str, Any]:
        audio = load_audio(example.audio, example.offset, example.duration)
        return self._complete(self.prompt(audio, example.language), example)

    def from_encoder_states(self, example: Example, entry: dict[str, Any]) -> dict[str, Any]:
        """Features for a clip whose encoder output is cached (``entry``: its "states" and the
        clip's length in "samples"): no audio work at all. The prompt holds the clip's tokens."""
        n_tokens = audio_tokens(entry["samples"], self.audio_tokens)
        prompt = {
            "prompt_ids": self.prompt_ids(n_tokens, example.language or self.default_language),
            "encoder_states": entry["states"][:n_tokens],
        }
        return self._complete(prompt, example)

    def _complete(self, features: dict[str, Any], example: Example) -> dict[str, Any]:
        features["target_ids"] = self.target(example.text)
        features["language"] = example.language or self.default_language
        features["text"] = example.text
        return features

"""A Realtime model's training sequence: the processor's prompt, then the text stream built from
word timings, one token per 80 ms audio frame.

The processor (transformers' VoxtralRealtimeProcessor, mistral-common's offline streaming
request) pads the clip with ``n_left`` frames of silence before it and ``delay + 1 + 10`` after
it, and writes the prompt ``<s> [STREAMING_PAD] * (n_left + delay)``. Generation feeds position p
the audio of frame p plus the token at p, and writes the token at p + 1; so the token at position
``q = 1 + n_left + delay + f`` is written having heard the clip up to its frame ``f + delay``: it
is the text for clip frame ``f``, ``delay`` frames late. The stream, for a word starting in clip
frame f (start // 80 ms):

    position 1 + n_left + delay + f:  [STREAMING_WORD]
    the next positions:               the word's tokens (" three"), one per frame
    elsewhere:                        [STREAMING_PAD]
    after the clip's last frame:      </s>

A word whose frame is still taken by the previous word's tokens starts at the first free one.
Labels are the stream itself (the model's loss shifts them), from the first generated position to
</s>; the prompt and everything after </s> are -100.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from transformers import VoxtralRealtimeProcessor

from voxtral_exp.data.audio import TARGET_RATE, load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.model.tokens import IGNORE_INDEX, MEL_FRAMES_PER_TOKEN
from voxtral_exp.realtime.model import FRAME_MS, SAMPLES_PER_FRAME, STREAMING_PAD_ID, STREAMING_WORD_ID
from voxtral_exp.realtime.words import Words, WordTimingError


def word_frame(seconds: float) -> int:
    """The 80 ms frame a time falls in."""
    return int(math.floor(seconds * 1000 / FRAME_MS + 1e-6))


class StreamBuilder:
    """Word timings -> (input_ids, labels) for one clip, given the processor's prompt."""

    def __init__(self, processor: VoxtralRealtimeProcessor):
        self.tokenizer = processor.tokenizer
        self.delay = processor.num_delay_tokens
        self.n_left = processor.mistral_common_audio_config.n_left_pad_tokens
        self.n_right = processor.num_right_pad_tokens  # delay + 1 + 10 frames of silence after the clip
        self.eos = self.tokenizer.eos_token_id
        self._word_ids: dict[str, list[int]] = {}

    @property
    def first_text_position(self) -> int:
        """Where the stream's first generated token sits: after <s> and n_left + delay pads."""
        return 1 + self.n_left + self.delay

    def word_ids(self, word: str) -> list[int]:
        if word not in self._word_ids:
            self._word_ids[word] = self.tokenizer.encode(" " + word, add_special_tokens=False)
        return self._word_ids[word]

    def layout(self, words: Words, clip_frames: int) -> tuple[list[tuple[int, list[int]]], int]:
        """Each word's (stream frame, its marker and tokens), and the frame of </s>: a word starts
        in the frame its start falls in, or the first one the previous word leaves free."""
        placed, free = [], 0
        for word, begin, _ in words:
            frame = max(word_frame(begin), free)
            tokens = [STREAMING_WORD_ID, *self.word_ids(word)]
            placed.append((frame, tokens))
            free = frame + len(tokens)
        return placed, max(clip_frames, free)

    def fit_problem(self, words: Words, seconds: float) -> str | None:
        """Why the words do not fit in the clip's stream (one token per 80 ms, </s> before the end of
        the padding), or None."""
        clip_frames = math.ceil(round(seconds * TARGET_RATE) / SAMPLES_PER_FRAME)
        _, end = self.layout(words, clip_frames)
        room = clip_frames + self.n_right - self.delay - 1  # stream frames before the padded clip ends
        if end >= room:
            return (
                f"its words' tokens and markers need {end + 1} frames of 80 ms, more than the {room} its stream has "
                "(too many words, or tokens, too close together)"
            )
        return None

    def __call__(self, prompt: torch.Tensor, n_positions: int, clip_frames: int, words: Words, origin: str = ""):
        start = self.first_text_position
        if len(prompt) != start:
            raise ValueError(f"the processor's prompt has {len(prompt)} tokens, expected {start}")
        placed, end = self.layout(words, clip_frames)
        if start + end > n_positions - 1:
            raise WordTimingError(
                f"{origin}: its words' tokens run {start + end - n_positions + 1} frame(s) past the end of the padded "
                "clip: too many words too close together for one token per 80 ms"
            )
        stream = torch.full((n_positions,), STREAMING_PAD_ID, dtype=torch.long)
        stream[:start] = prompt
        for frame, tokens in placed:
            stream[start + frame : start + frame + len(tokens)] = torch.tensor(tokens)
        stream[start + end] = self.eos
        labels = stream.clone()
        labels[:start] = IGNORE_INDEX
        labels[start + end + 1 :] = IGNORE_INDEX
        return stream, labels


class StreamFeaturizer:
    """Example -> {"input_ids", "labels", "input_features"} for a Realtime model (plain tensors,
    picklable), built with the processor itself (its prompt, padding and mel features)."""

    audio_tokens = "stream"  # no audio-token rule: every frame is one position

    def __init__(self, processor: VoxtralRealtimeProcessor, default_language: str | None = None):
        self.processor = processor
        self.builder = StreamBuilder(processor)
        self.default_language = default_language

    def inputs(self, audio: np.ndarray) -> dict[str, torch.Tensor]:
        """The processor's output for one clip: prompt ids (1-D) and mel features (mels, frames)."""
        out = self.processor(audio, sampling_rate=TARGET_RATE, return_tensors="pt")
        return {"prompt_ids": out["input_ids"][0], "input_features": out["input_features"][0]}

    def __call__(self, example: Example) -> dict[str, Any]:
        if example.words is None:
            raise WordTimingError(f"{example.origin}: no word timings (a Realtime model trains on them)")
        audio = load_audio(example.audio, example.offset, example.duration)
        inputs = self.inputs(audio)
        n_positions = inputs["input_features"].shape[-1] // MEL_FRAMES_PER_TOKEN
        clip_frames = math.ceil(len(audio) / SAMPLES_PER_FRAME)
        input_ids, labels = self.builder(inputs["prompt_ids"], n_positions, clip_frames, example.words, example.origin)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "input_features": inputs["input_features"],
            "language": example.language or self.default_language,
            "text": example.text,
        }


class StreamCollator:
    """Right-pads streams and their mel features (8 frames per position); the model is causal, so
    the padding after a clip changes nothing before it, and its labels are -100."""

    def __init__(self, num_delay_tokens: int, dtype: torch.dtype = torch.float32):
        self.num_delay_tokens = num_delay_tokens
        self.dtype = dtype  # the model's: the Realtime encoder does not cast its input

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        mels = features[0]["input_features"].shape[0]
        input_ids = torch.full((len(features), length), STREAMING_PAD_ID, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        input_features = torch.zeros((len(features), mels, length * MEL_FRAMES_PER_TOKEN), dtype=self.dtype)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = f["input_ids"]
            labels[i, :n] = f["labels"]
            input_features[i, :, : n * MEL_FRAMES_PER_TOKEN] = f["input_features"]
        return {
            "input_ids": input_ids,
            "labels": labels,
            "input_features": input_features,
            "num_delay_tokens": self.num_delay_tokens,
        }

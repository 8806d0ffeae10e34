"""Transcribe with a Realtime model as it is served: transformers' own generation
(``model.generate`` on the processor's output: mistral-common's offline streaming request, the
whole clip padded as the server pads it, one token written per 80 ms frame, greedy), then the
stream read back into text and word start times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.realtime.model import FRAME_MS, STREAMING_PAD_ID, STREAMING_WORD_ID
from voxtral_exp.realtime.stream import StreamFeaturizer

log = logging.getLogger(__name__)


@dataclass
class Stream:
    """What the model wrote after its prompt, one token per frame (``tokens[g]`` is the text for
    clip frame g), and that read as text and as words with their start times."""

    tokens: list[int]
    text: str
    words: list[tuple[str, float]]  # (word, start in seconds)
    ended: bool  # wrote </s> before the audio ran out


@torch.no_grad()
def generate_stream(model: torch.nn.Module, featurizer: StreamFeaturizer, audio: np.ndarray) -> Stream:
    """One clip through ``model.generate``, greedy, for as many positions as the padded clip has."""
    processor = featurizer.processor
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    parameter = next(model.parameters())
    inputs = {k: v.to(parameter.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    inputs["input_features"] = inputs["input_features"].to(parameter.dtype)
    was_training = model.training
    model.eval()
    out = model.generate(**inputs, do_sample=False, num_beams=1)
    model.train(was_training)
    tokens = out[0, inputs["input_ids"].shape[1] :].tolist()
    return read_stream(tokens, processor.tokenizer)


def read_stream(tokens: list[int], tokenizer) -> Stream:
    """A written stream -> text (the special tokens dropped, up to </s>) and words: each
    [STREAMING_WORD] starts one, at its frame; its text is the tokens up to the next special one."""
    eos = tokenizer.eos_token_id
    ended = eos in tokens
    if ended:
        tokens = tokens[: tokens.index(eos) + 1]
    words: list[tuple[str, float]] = []
    current: list[int] | None = None
    start = 0.0

    def close():
        if current:
            text = tokenizer.decode(current, skip_special_tokens=True).strip()
            if text:
                words.append((text, start))

    for frame, token in enumerate(tokens):
        if token == STREAMING_WORD_ID:
            close()
            current, start = [], frame * FRAME_MS / 1000
        elif token in (STREAMING_PAD_ID, eos):
            close()
            current = None
        elif current is not None:
            current.append(token)
        else:  # a token outside a word (a model that skipped the marker): its own word
            current, start = [token], frame * FRAME_MS / 1000
    close()
    text = " ".join(w for w, _ in words)
    return Stream(tokens, text, words, ended)


def stream_hypotheses(
    model: torch.nn.Module, featurizer: StreamFeaturizer, examples: list[Example]
) -> tuple[list[str], list[bool]]:
    """Transcripts of ``examples`` and, for each, whether the audio ran out before </s>."""
    texts, cut = [], []
    for example in examples:
        stream = generate_stream(model, featurizer, load_audio(example.audio, example.offset, example.duration))
        texts.append(stream.text)
        cut.append(not stream.ended)
    return texts, cut


def frame_agreement(model: torch.nn.Module, featurizer: StreamFeaturizer, examples: list[Example]) -> float:
    """The share of frames where the model's greedy stream equals the stream it was trained on
    (from the first written position to </s> of the training stream)."""
    same = total = 0
    start = featurizer.builder.first_text_position
    for example in examples:
        target = featurizer(example)["labels"][start:]
        target = target[target != -100].tolist()
        written = generate_stream(model, featurizer, load_audio(example.audio, example.offset, example.duration))
        tokens = written.tokens + [None] * len(target)
        same += sum(a == b for a, b in zip(target, tokens))
        total += len(target)
    return same / max(total, 1)

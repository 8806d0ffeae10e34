"""Transcribe with a Realtime model as it is served: transformers' own generation
(``model.generate`` on the processor's output: mistral-common's offline streaming request, the
whole clip padded as the server pads it, one token written per 80 ms frame, greedy), then the
stream read back into text and word start times.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.realtime.model import FRAME_MS, SAMPLES_PER_FRAME, STREAMING_PAD_ID, STREAMING_WORD_ID
from voxtral_exp.realtime.stream import StreamFeaturizer


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """The model in eval mode for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


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
    with evaluating(model), warnings.catch_warnings():  # the model sets max_length to the clip's frames itself
        warnings.filterwarnings("ignore", message="Using the model-agnostic default `max_length`")
        out = model.generate(**inputs, do_sample=False, num_beams=1)
    tokens = out[0, inputs["input_ids"].shape[1] :].tolist()
    return read_stream(tokens, processor.tokenizer)


@torch.no_grad()
def generate_live(model: torch.nn.Module, featurizer: StreamFeaturizer, audio: np.ndarray) -> Stream:
    """One clip streamed live, as a realtime server receives it: the first chunk (the prompt's
    frames) through the processor in streaming mode, then 80 ms at a time, each chunk's mel frames
    computed from its own samples, into ``model.generate`` as a generator (transformers' streaming
    generation); the clip is padded on the right as the offline request pads it, so both modes
    hear the same frames."""
    processor, extractor = featurizer.processor, featurizer.processor.feature_extractor
    tail = (-len(audio)) % SAMPLES_PER_FRAME + processor.num_right_pad_tokens * SAMPLES_PER_FRAME
    padded = np.pad(np.asarray(audio, dtype=np.float32), (0, tail))
    parameter = next(model.parameters())

    def features(samples: np.ndarray, first: bool):
        out = processor(
            samples, is_streaming=True, is_first_audio_chunk=first, sampling_rate=16000, return_tensors="pt"
        )
        return out, out["input_features"].to(parameter.device, parameter.dtype)

    first, first_features = features(padded[: processor.num_samples_first_audio_chunk], True)

    def chunks():
        yield first_features
        frame = processor.num_mel_frames_first_audio_chunk
        while (
            start := frame * extractor.hop_length - extractor.win_length // 2
        ) + processor.num_samples_per_audio_chunk <= len(padded):
            yield features(padded[start : start + processor.num_samples_per_audio_chunk], False)[1]
            frame += processor.audio_length_per_tok

    prompt = first["input_ids"].to(parameter.device)
    with evaluating(model):
        out = model.generate(
            input_ids=prompt, input_features=chunks(), num_delay_tokens=first["num_delay_tokens"], do_sample=False
        )
    return read_stream(out[0, prompt.shape[1] :].tolist(), processor.tokenizer)


def read_stream(tokens: list[int], tokenizer) -> Stream:
    """A written stream -> text (decoded up to </s>, the special tokens dropped, as transformers'
    and vLLM's decoding returns it) and words: each [STREAMING_WORD] starts one, at its frame; its
    text is the tokens up to the next special one."""
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
    text = tokenizer.decode(tokens, skip_special_tokens=True).strip()  # the transcript as a server returns it
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


def frame_agreement(
    model: torch.nn.Module, featurizer: StreamFeaturizer, examples: list[Example]
) -> tuple[float, float]:
    """How often the model's greedy stream equals the stream it was trained on, from the first
    written frame to the training stream's </s>: over all those frames, and over the frames that
    hold text (markers, word tokens, </s>; most frames are [STREAMING_PAD], which a model that
    never writes would match)."""
    same = total = text_same = text_total = 0
    start = featurizer.builder.first_text_position
    for example in examples:
        target = featurizer(example)["labels"][start:]
        target = target[target != -100].tolist()
        written = generate_stream(model, featurizer, load_audio(example.audio, example.offset, example.duration))
        for want, got in zip(target, written.tokens + [None] * len(target)):
            same += want == got
            total += 1
            if want != STREAMING_PAD_ID:
                text_same += want == got
                text_total += 1
    return same / max(total, 1), text_same / max(text_total, 1)

"""Voxtral's token facts, as its tokenizer and processor fix them, and how many audio tokens a clip
gives the language model (a leaf: imports nothing).

`model.audio_tokens=chunk` (Voxtral's own): every started 30 s chunk is 375 [AUDIO] tokens, the
clip padded with silence. `clip`: only the tokens that cover the clip, plus a margin, rounded up
to a bucket; a clip over 30 s keeps its whole chunks and trims the last one. Each token is 80 ms
of audio (4 encoder frames of 20 ms, 8 mel frames of 10 ms).
"""

import math

AUDIO_TOKEN_ID = 24  # [AUDIO]; VoxtralConfig leaves it None
PAD_TOKEN_ID = 11  # <pad>
AUDIO_TOKENS_PER_CHUNK = 375  # [AUDIO] tokens per 30 s chunk (12.5 Hz)
IGNORE_INDEX = -100  # label value the loss skips (transformers' convention): the prompt, padding

SAMPLING_RATE = 16000
CHUNK_SAMPLES = 30 * SAMPLING_RATE
MEL_FRAMES_PER_TOKEN = 8  # 160-sample hops; the encoder halves them, the projector stacks 4
# clip: the margin covers the encoder frames that still see the clip's last sound (its convolutions
# and the speech's decay); the bucket keeps the number of distinct prompt lengths small (one
# cached prompt each) and costs at most 7 tokens (0.56 s) of silence per clip.
CLIP_MARGIN_S = 0.5
CLIP_BUCKET = 8
AUDIO_TOKEN_MODES = ("chunk", "clip")


def chunks(n_samples: int) -> int:
    """30 s chunks of a clip of ``n_samples`` (16 kHz); at least one."""
    return max(1, math.ceil(n_samples / CHUNK_SAMPLES))


def audio_tokens(n_samples: int, mode: str = "chunk") -> int:
    """[AUDIO] tokens a clip of ``n_samples`` (16 kHz) puts in the prompt under ``mode``."""
    full = chunks(n_samples) * AUDIO_TOKENS_PER_CHUNK
    if mode == "chunk":
        return full
    if mode != "clip":
        raise ValueError(f"model.audio_tokens={mode!r}: expected one of {AUDIO_TOKEN_MODES}")
    needed = math.ceil((n_samples / SAMPLING_RATE + CLIP_MARGIN_S) * AUDIO_TOKENS_PER_CHUNK / 30)
    return min(full, CLIP_BUCKET * math.ceil(needed / CLIP_BUCKET))

"""Voxtral's token facts, as its tokenizer and processor fix them (a leaf: imports nothing)."""

AUDIO_TOKEN_ID = 24  # [AUDIO]; VoxtralConfig leaves it None
PAD_TOKEN_ID = 11  # <pad>
AUDIO_TOKENS_PER_CHUNK = 375  # [AUDIO] tokens per 30 s chunk (12.5 Hz)
IGNORE_INDEX = -100  # label value the loss skips (transformers' convention): the prompt, padding

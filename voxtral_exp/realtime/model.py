"""The Realtime processor and model: the released checkpoint, or a random one built offline.

A random model (`model=realtime-tiny`, `model=voxtral-realtime-4b model.random_init=true`) gets a
tokenizer written from the file the mistral-common wheel ships (as model=tiny's is), with the
Realtime special tokens at the released ids ([STREAMING_PAD] 32, [STREAMING_WORD] 33) and the
released streaming audio section (80 ms frames, 32 left-pad tokens, 480 ms delay). The delay a run
trains with (`model.delay_ms`) is written into its tokenizer file, so every folder it saves
(checkpoints, final/) serves at that delay through transformers' processor unchanged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    VoxtralRealtimeConfig,
    VoxtralRealtimeFeatureExtractor,
    VoxtralRealtimeForConditionalGeneration,
    VoxtralRealtimeProcessor,
)
from transformers.tokenization_mistral_common import MistralCommonBackend

from voxtral_exp.errors import UserError
from voxtral_exp.model.processor import VOXTRAL_SPECIAL_TOKENS, cached_tekken, tekken_from_mistral_common

log = logging.getLogger(__name__)

STREAMING_PAD_ID = 32  # [STREAMING_PAD]: no text due at this frame (and the prompt's padding)
STREAMING_WORD_ID = 33  # [STREAMING_WORD]: a word starts here; its tokens follow
SPECIAL_TOKENS = {**VOXTRAL_SPECIAL_TOKENS, STREAMING_PAD_ID: "[STREAMING_PAD]", STREAMING_WORD_ID: "[STREAMING_WORD]"}
FRAME_MS = 80  # one text token per 80 ms of audio (12.5 Hz)
SAMPLES_PER_FRAME = 1280
# The released tokenizer's audio section (tekken.json of Voxtral-Mini-4B-Realtime-2602).
STREAMING_AUDIO = {
    "sampling_rate": 16000,
    "frame_rate": 12.5,
    "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
    "transcription_format": "streaming",
    "transcription_delay_ms": 480,
    "streaming_look_ahead_ms": 2.5,
    "streaming_look_back_ms": 52.5,
    "streaming_n_left_pad_tokens": 32,
}


class DelayError(UserError, ValueError):
    """`model.delay_ms` that the model does not support."""


def is_realtime(model_cfg: DictConfig) -> bool:
    return model_cfg.get("family") == "realtime"


def check_delay(model_cfg: DictConfig) -> None:
    """`model.delay_ms`: null (the tokenizer's, 480 ms) or a multiple of 80 ms within
    `model.delay_range_ms` (the released model was trained on 80-2400 ms)."""
    delay = model_cfg.get("delay_ms")
    if delay is None:
        return
    low, high = model_cfg.delay_range_ms
    if isinstance(delay, bool) or not isinstance(delay, int) or delay % FRAME_MS or not low <= delay <= high:
        raise DelayError(
            f"model.delay_ms={delay!r}: expected a multiple of {FRAME_MS} ms from {low} to {high} "
            f"(model.delay_range_ms), or null for the model's default"
        )


def tokenizer_file(source: Path | None, delay_ms: int | None, vocab_size: int | None = None) -> Path:
    """A tekken file with the given delay (null: as the source has it), written once to the cache.
    ``source``: a Realtime tokenizer file; None builds one from mistral-common's, cut to
    ``vocab_size`` tokens (special ones included) when given."""
    if source is None:
        data = tekken_from_mistral_common(SPECIAL_TOKENS, json.loads(json.dumps(STREAMING_AUDIO)))
        if vocab_size:
            data["config"]["default_vocab_size"] = vocab_size
    else:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    if delay_ms is not None:
        data["audio"]["transcription_delay_ms"] = delay_ms
    return cached_tekken(data, "tekken-rt")


def load_processor(
    name_or_path: str | None, revision: str | None = None, delay_ms: int | None = None, vocab_size: int | None = None
) -> VoxtralRealtimeProcessor:
    """The checkpoint's processor (Hub id or folder), or (None) the offline one; with ``delay_ms``
    its tokenizer serves and trains at that delay."""
    if name_or_path is None:
        path = tokenizer_file(None, delay_ms, vocab_size)
        return VoxtralRealtimeProcessor(
            VoxtralRealtimeFeatureExtractor(), MistralCommonBackend(tokenizer_path=str(path))
        )
    processor = VoxtralRealtimeProcessor.from_pretrained(name_or_path, revision=revision, mistral_format=True)
    if delay_ms is not None and delay_ms != processor.mistral_common_audio_config.transcription_delay_ms:
        path = tokenizer_file(Path(processor.tokenizer._tokenizer_path), delay_ms)
        processor = VoxtralRealtimeProcessor(
            processor.feature_extractor, MistralCommonBackend(tokenizer_path=str(path))
        )
    return processor


def delay_ms(processor: VoxtralRealtimeProcessor) -> int:
    return int(processor.mistral_common_audio_config.transcription_delay_ms)


def random_config(cfg: DictConfig) -> VoxtralRealtimeConfig:
    """The released architecture (transformers' defaults are the 4B's) with `model.text_config` /
    `model.audio_config` overrides."""
    text = OmegaConf.to_container(cfg.text_config, resolve=True)
    audio = OmegaConf.to_container(cfg.audio_config, resolve=True)
    return VoxtralRealtimeConfig(
        text_config={"model_type": "voxtral_realtime_text", **text},
        audio_config={"model_type": "voxtral_realtime_encoder", **audio},
    )


def build_model(cfg: DictConfig, dtype: torch.dtype, seed: int) -> VoxtralRealtimeForConditionalGeneration:
    """`model` node -> a VoxtralRealtimeForConditionalGeneration (random weights or from_pretrained)."""
    if cfg.random_init:
        torch.manual_seed(seed)
        model = VoxtralRealtimeForConditionalGeneration(random_config(cfg)).to(dtype)
        model.config._attn_implementation = cfg.attn_implementation
        log.info("Model <model=%s>: Voxtral Realtime, random weights, %s", cfg.name, dtype)
        return model
    log.info("Model <model=%s>: loading %s (revision %s), %s", cfg.name, cfg.name_or_path, cfg.revision, dtype)
    return VoxtralRealtimeForConditionalGeneration.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, dtype=dtype, attn_implementation=cfg.attn_implementation
    )


def saved_is_realtime(path: str | Path) -> bool:
    """Whether a saved model folder (full model, adapter, merged, checkpoint) holds a Realtime model:
    its processor says so (every folder voxtral_exp saves has one), else its config."""
    path = Path(path)
    processor = path / "processor_config.json"
    if processor.is_file():
        return json.loads(processor.read_text()).get("processor_class") == "VoxtralRealtimeProcessor"
    for config in (path / "config.json", path / "base_model" / "config.json"):
        if config.is_file():
            return json.loads(config.read_text()).get("model_type") == "voxtral_realtime"
    return False


def load_trained(path: str | Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A saved Realtime model (full, or base + LoRA adapter; a random base is saved beside it)."""
    from peft import PeftConfig, PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").exists():
        return VoxtralRealtimeForConditionalGeneration.from_pretrained(path, dtype=dtype)
    if (path / "base_model").exists():
        base = VoxtralRealtimeForConditionalGeneration.from_pretrained(path / "base_model", dtype=dtype)
    else:
        config = PeftConfig.from_pretrained(str(path))
        base = VoxtralRealtimeForConditionalGeneration.from_pretrained(
            config.base_model_name_or_path, revision=config.revision, dtype=dtype
        )
    return PeftModel.from_pretrained(base, str(path))

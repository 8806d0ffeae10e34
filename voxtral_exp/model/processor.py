"""The Voxtral processor: the real one from a checkpoint, or an offline one for random models.

Random-weight models (``model=tiny``, ``model.random_init=true``) need a processor without a
download. Mistral's tokenizer file is not on this machine, but the mistral-common wheel ships a
tekken (v3) file with the same ordinary vocabulary layout. Rewritten as a v7 tokenizer with
Voxtral's special tokens and an audio section, it loads into transformers' ``VoxtralProcessor``
and produces exactly Voxtral's prompt layout (special-token ids match the real model's).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import mistral_common
from transformers import VoxtralProcessor, WhisperFeatureExtractor
from transformers.tokenization_mistral_common import MistralCommonBackend

from voxtral_exp.files import cache_folder, write_atomic

log = logging.getLogger(__name__)

SOURCE_TOKENIZER = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
# Voxtral's control tokens and their ids (ranks); the gaps are filled with placeholders.
VOXTRAL_SPECIAL_TOKENS = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    20: "[ARGS]",
    21: "[CALL_ID]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    34: "[TRANSCRIBE]",
}
AUDIO_SECTION = {
    "sampling_rate": 16000,
    "frame_rate": 12.5,  # 375 audio tokens per 30 s chunk
    "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
    "chunk_length_s": 30.0,
}
OFFLINE_MODEL_ID = "voxtral-exp/offline-tekken"  # a label only: never fetched


def offline_tokenizer_file(cache_dir: str | Path | None = None, num_mel_bins: int = 128) -> Path:
    """Write (once) the Voxtral-compatible tekken file derived from mistral-common's and return it."""
    audio = {
        **AUDIO_SECTION,
        "audio_encoding_config": {**AUDIO_SECTION["audio_encoding_config"], "num_mel_bins": num_mel_bins},
    }
    return cached_tekken(tekken_from_mistral_common(VOXTRAL_SPECIAL_TOKENS, audio), "tekken", cache_dir)


def tekken_from_mistral_common(special_tokens: dict[int, str], audio: dict) -> dict:
    """mistral-common's tekken file as a v7 tokenizer with these control tokens (ranks; the gaps
    filled with placeholders) and this audio section."""
    data = json.loads(SOURCE_TOKENIZER.read_text(encoding="utf-8"))
    data["config"]["version"] = "v7"
    data.pop("image", None)
    data["special_tokens"] = [
        {"rank": rank, "token_str": special_tokens.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
        for rank in range(max(special_tokens) + 1)
    ]
    data["audio"] = audio
    return data


def cached_tekken(data: dict, prefix: str, cache_dir: str | Path | None = None) -> Path:
    """``data`` written once as <cache>/<prefix>-<digest>/tekken.json (the digest of its text)."""
    text = json.dumps(data)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache_folder(cache_dir) / f"{prefix}-{digest}" / "tekken.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)  # concurrent ranks or jobs never see half a file
    return path


def build_offline_processor(num_mel_bins: int = 128) -> VoxtralProcessor:
    """A VoxtralProcessor that needs no download, for models with random weights (128 mel bins
    as Voxtral; 80 for an encoder from Whisper tiny)."""
    tokenizer = MistralCommonBackend(tokenizer_path=str(offline_tokenizer_file(num_mel_bins=num_mel_bins)))
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16000)
    return VoxtralProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def load_processor(name_or_path: str | None, revision: str | None = None, num_mel_bins: int = 128) -> VoxtralProcessor:
    """The processor saved with a checkpoint (Hub id or folder), or the offline one if None."""
    if name_or_path is None:
        log.info("Building the offline Voxtral processor from %s", SOURCE_TOKENIZER.name)
        return build_offline_processor(num_mel_bins)
    # mistral_format keeps the tokenizer a MistralCommonBackend (apply_transcription_request
    # needs it) even in folders that hold no model config.json, e.g. a LoRA adapter's.
    return VoxtralProcessor.from_pretrained(name_or_path, revision=revision, mistral_format=True)

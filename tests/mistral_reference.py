"""A reader of Mistral's Voxtral layout (params.json, consolidated.safetensors, tekken.json), written
for the tests from what the published readers do, independently of voxtral_exp.export:

- names and the rotary layout as transformers' convert_voxtral_weights_to_hf.py maps them (Mistral
  -> transformers' saved names; q/k rows regrouped from interleaved pairs into halves per head);
- params.json read as vLLM 0.33.0 reads it (transformers_utils/configs/mistral.py): the text shapes
  at the top, the encoder's under multimodal.whisper_model_args (mel bins and positions included);
- the encoder's positions rebuilt as sinusoids (the conversion script and vLLM's WhisperEncoder);
- the prompt and the padded audio from mistral-common (vLLM's get_generation_prompt), the log-mel
  of the padded audio in 3000-frame pieces (WhisperFeatureExtractor, as transformers' processor).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import VoxtralConfig, VoxtralForConditionalGeneration, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import sinusoids

WHISPER = r"mm_whisper_embeddings\.whisper_encoder\."
LAYER = WHISPER + r"transformer\.layers\.(\d+)\."
# Mistral's name -> transformers' name as save_pretrained writes it
SAVED_NAMES = [
    (r"output\.weight", r"language_model.lm_head.weight"),
    (r"norm\.weight", r"language_model.model.norm.weight"),
    (r"(?:mm_whisper_embeddings\.)?tok_embeddings\.weight", r"language_model.model.embed_tokens.weight"),
    (r"layers\.(\d+)\.attention_norm\.weight", r"language_model.model.layers.\1.input_layernorm.weight"),
    (r"layers\.(\d+)\.ffn_norm\.weight", r"language_model.model.layers.\1.post_attention_layernorm.weight"),
    (r"layers\.(\d+)\.attention\.w([qkvo])\.weight", r"language_model.model.layers.\1.self_attn.\2_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w1\.weight", r"language_model.model.layers.\1.mlp.gate_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w2\.weight", r"language_model.model.layers.\1.mlp.down_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w3\.weight", r"language_model.model.layers.\1.mlp.up_proj.weight"),
    (WHISPER + r"conv_layers\.0\.(weight|bias)", r"audio_tower.conv1.\1"),
    (WHISPER + r"conv_layers\.1\.(weight|bias)", r"audio_tower.conv2.\1"),
    (WHISPER + r"transformer\.norm\.(weight|bias)", r"audio_tower.layer_norm.\1"),
    (LAYER + r"attention\.w([qkv])\.(weight|bias)", r"audio_tower.layers.\1.self_attn.\2_proj.\3"),
    (LAYER + r"attention\.wo\.(weight|bias)", r"audio_tower.layers.\1.self_attn.out_proj.\2"),
    (LAYER + r"attention_norm\.(weight|bias)", r"audio_tower.layers.\1.self_attn_layer_norm.\2"),
    (LAYER + r"feed_forward\.w1\.(weight|bias)", r"audio_tower.layers.\1.fc1.\2"),
    (LAYER + r"feed_forward\.w2\.(weight|bias)", r"audio_tower.layers.\1.fc2.\2"),
    (LAYER + r"ffn_norm\.(weight|bias)", r"audio_tower.layers.\1.final_layer_norm.\2"),
    (r"mm_whisper_embeddings\.audio_language_projection\.0\.weight", r"multi_modal_projector.linear_1.weight"),
    (r"mm_whisper_embeddings\.audio_language_projection\.2\.weight", r"multi_modal_projector.linear_2.weight"),
]


def saved_name(name: str) -> str:
    for pattern, replacement in SAVED_NAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    raise KeyError(f"{name}: not a name of Mistral's Voxtral layout")


def rope_halves(weight: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Mistral's q/k rows (rotary pairs interleaved) in transformers' order (halves per head)."""
    hidden = weight.shape[1]
    return weight.view(n_heads, head_dim // 2, 2, hidden).transpose(1, 2).reshape(n_heads * head_dim, hidden)


def config_from_params(params: dict) -> VoxtralConfig:
    encoder = params["multimodal"]["whisper_model_args"]["encoder_args"]
    text = {
        "hidden_size": params["dim"],
        "num_hidden_layers": params["n_layers"],
        "intermediate_size": params["hidden_dim"],
        "num_attention_heads": params["n_heads"],
        "num_key_value_heads": params["n_kv_heads"],
        "rms_norm_eps": params["norm_eps"],
        "head_dim": params["head_dim"],
        "vocab_size": params["vocab_size"],
        "rope_theta": params["rope_theta"],
        "max_position_embeddings": params.get("max_seq_len", 131072),
        "tie_word_embeddings": params.get("tied_embeddings", False),
    }
    audio = {
        "hidden_size": encoder["dim"],
        "num_hidden_layers": encoder["n_layers"],
        "intermediate_size": encoder["hidden_dim"],
        "num_attention_heads": encoder["n_heads"],
        "vocab_size": encoder["vocab_size"],
        "num_mel_bins": encoder["audio_encoding_args"]["num_mel_bins"],
        "max_source_positions": encoder.get("max_source_positions", 1500),
    }
    assert encoder["head_dim"] * encoder["n_heads"] == encoder["dim"]
    assert (
        encoder["hidden_dim"]
        == encoder["dim"] * params["multimodal"]["whisper_model_args"]["downsample_args"]["downsample_factor"]
    )
    config = VoxtralConfig(text_config=text, audio_config=audio, audio_token_id=24, projector_hidden_act="gelu")
    config.text_config.pad_token_id = 11
    return config


def transformers_weights(folder: Path, config: VoxtralConfig) -> dict[str, torch.Tensor]:
    """consolidated.safetensors under transformers' saved names, q/k in its rotary layout, the
    encoder's sinusoidal positions added."""
    text = config.text_config
    heads = {"q": text.num_attention_heads, "k": text.num_key_value_heads}
    out = {}
    for name, tensor in load_file(str(folder / "consolidated.safetensors")).items():
        target = saved_name(name)
        if match := re.fullmatch(r"layers\.\d+\.attention\.w([qk])\.weight", name):
            tensor = rope_halves(tensor, heads[match.group(1)], text.head_dim)
        assert target not in out, f"{target} twice"
        out[target] = tensor
    audio = config.audio_config
    out["audio_tower.embed_positions.weight"] = sinusoids(audio.max_source_positions, audio.hidden_size)
    return out


def load(folder: Path, scratch: Path) -> VoxtralForConditionalGeneration:
    """A plain VoxtralForConditionalGeneration from an exported folder, loaded by transformers
    from its saved names (``scratch`` holds the converted copy)."""
    config = config_from_params(json.loads((folder / "params.json").read_text()))
    scratch.mkdir(parents=True, exist_ok=True)
    save_file(transformers_weights(folder, config), str(scratch / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(scratch))
    return VoxtralForConditionalGeneration.from_pretrained(str(scratch), dtype=torch.float32).eval()


def tokenizer(folder: Path):
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.from_file(str(folder / "tekken.json"))


def request(tok, audio: np.ndarray, language: str | None):
    """mistral-common's transcription request for 16 kHz ``audio``, as vLLM builds it from an
    uploaded WAV: (prompt ids, the padded audio)."""
    from mistral_common.protocol.transcription.request import TranscriptionRequest
    from mistral_common.tokens.tokenizers.audio import Audio

    wav = Audio(audio_array=audio, sampling_rate=16000, format="wav").to_base64("wav")
    tokenized = tok.encode_transcription(TranscriptionRequest(audio=wav, language=language))
    return tokenized.tokens, tokenized.audios[0].audio_array


def inputs(model, tok, audio: np.ndarray, language: str | None) -> dict[str, torch.Tensor]:
    """input_ids and input_features (one 3000-frame piece per 30 s of the padded audio)."""
    ids, padded = request(tok, audio, language)
    mels = model.config.audio_config.num_mel_bins
    features = WhisperFeatureExtractor(feature_size=mels)(padded, sampling_rate=16000, return_tensors="pt")
    pieces = torch.cat(features.input_features.split(3000, dim=-1))
    return {"input_ids": torch.tensor([ids]), "input_features": pieces}


@torch.no_grad()
def next_token_logits(model, tok, audio: np.ndarray, language: str | None) -> torch.Tensor:
    return model(**inputs(model, tok, audio, language)).logits[0, -1]


@torch.no_grad()
def transcribe(model, tok, audio: np.ndarray, language: str | None, max_new_tokens: int) -> str:
    batch = inputs(model, tok, audio, language)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    out = out[0, batch["input_ids"].shape[1] :].tolist()
    eos = tok.instruct_tokenizer.tokenizer.eos_id
    return tok.decode(out[: out.index(eos)] if eos in out else out)

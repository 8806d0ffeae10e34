"""Mistral's native layout of a Voxtral 2507 model (what vLLM and the other Voxtral runtimes load):
``params.json``, ``consolidated.safetensors``, ``tekken.json``. The key mapping is data, and the
one transform (the rotary layout of the text q/k weights) is a function; both in one place.

Sources (README, "Serve it"): transformers' ``convert_voxtral_weights_to_hf.py`` (Mistral -> HF,
its STATE_DICT_MAPPING and ``permute_for_rope``, read backwards) and vLLM 0.33.0's Voxtral
``load_weights`` (vllm/model_executor/models/voxtral.py:494-560) and params.json reader
(vllm/transformers_utils/configs/mistral.py:146-282).
"""

from __future__ import annotations

import re

import torch
from transformers import VoxtralConfig
from transformers.models.whisper.modeling_whisper import sinusoids

from voxtral_exp.errors import UserError

# transformers' names (a VoxtralForConditionalGeneration's state_dict) -> Mistral's. The encoder's
# sinusoidal positions have no entry: the original checkpoints do not hold them, every reader
# rebuilds them (``distance_from_sinusoids`` checks that this loses nothing).
TEXT = "model.language_model."
TEXT_LAYER = TEXT + r"layers\.(\d+)\."
ENCODER = "model.audio_tower."
ENCODER_LAYER = ENCODER + r"layers\.(\d+)\."
WHISPER = "mm_whisper_embeddings.whisper_encoder."
WHISPER_LAYER = WHISPER + r"transformer.layers.\1."
KEY_MAPPING = {
    r"lm_head\.weight": "output.weight",
    TEXT + r"embed_tokens\.weight": "mm_whisper_embeddings.tok_embeddings.weight",
    TEXT + r"norm\.weight": "norm.weight",
    TEXT_LAYER + r"input_layernorm\.weight": r"layers.\1.attention_norm.weight",
    TEXT_LAYER + r"post_attention_layernorm\.weight": r"layers.\1.ffn_norm.weight",
    TEXT_LAYER + r"self_attn\.(q|k|v|o)_proj\.weight": r"layers.\1.attention.w\2.weight",
    TEXT_LAYER + r"mlp\.gate_proj\.weight": r"layers.\1.feed_forward.w1.weight",
    TEXT_LAYER + r"mlp\.down_proj\.weight": r"layers.\1.feed_forward.w2.weight",
    TEXT_LAYER + r"mlp\.up_proj\.weight": r"layers.\1.feed_forward.w3.weight",
    ENCODER + r"conv1\.(weight|bias)": WHISPER + r"conv_layers.0.\1",
    ENCODER + r"conv2\.(weight|bias)": WHISPER + r"conv_layers.1.\1",
    ENCODER + r"layer_norm\.(weight|bias)": WHISPER + r"transformer.norm.\1",
    ENCODER_LAYER + r"self_attn\.(q|k|v)_proj\.(weight|bias)": WHISPER_LAYER + r"attention.w\2.\3",
    ENCODER_LAYER + r"self_attn\.out_proj\.(weight|bias)": WHISPER_LAYER + r"attention.wo.\2",
    ENCODER_LAYER + r"self_attn_layer_norm\.(weight|bias)": WHISPER_LAYER + r"attention_norm.\2",
    ENCODER_LAYER + r"fc1\.(weight|bias)": WHISPER_LAYER + r"feed_forward.w1.\2",
    ENCODER_LAYER + r"fc2\.(weight|bias)": WHISPER_LAYER + r"feed_forward.w2.\2",
    ENCODER_LAYER + r"final_layer_norm\.(weight|bias)": WHISPER_LAYER + r"ffn_norm.\2",
    r"model\.multi_modal_projector\.linear_1\.weight": "mm_whisper_embeddings.audio_language_projection.0.weight",
    r"model\.multi_modal_projector\.linear_2\.weight": "mm_whisper_embeddings.audio_language_projection.2.weight",
}
NOT_EXPORTED = (ENCODER + "embed_positions.weight",)
ROPE_PERMUTED = re.compile(TEXT_LAYER + r"self_attn\.(q|k)_proj\.weight")


class UnrepresentableError(UserError):
    """The model has something Mistral's layout has no place for; the message says what."""


def mistral_name(name: str) -> str:
    for pattern, replacement in KEY_MAPPING.items():
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    raise UnrepresentableError(f"{name}: Mistral's Voxtral layout has no weight of that name")


def unpermute_for_rope(weight: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """transformers' q/k rows (rotary halves per head) in Mistral's order (interleaved pairs): the
    inverse of the conversion script's ``permute_for_rope``."""
    hidden = weight.shape[1]
    return weight.view(n_heads, 2, head_dim // 2, hidden).transpose(1, 2).reshape(n_heads * head_dim, hidden)


def to_mistral(state_dict: dict[str, torch.Tensor], config: VoxtralConfig) -> dict[str, torch.Tensor]:
    """A VoxtralForConditionalGeneration's weights under Mistral's names and rotary layout."""
    text = config.text_config
    heads = {"q": text.num_attention_heads, "k": text.num_key_value_heads}
    out = {}
    for name, tensor in state_dict.items():
        if name in NOT_EXPORTED:
            continue
        if match := ROPE_PERMUTED.fullmatch(name):
            tensor = unpermute_for_rope(tensor, heads[match.group(2)], text.head_dim)
        out[mistral_name(name)] = tensor.contiguous()
    if text.tie_word_embeddings:
        out.pop("output.weight", None)  # tied: params.json says so and readers reuse the embeddings
    return out


def params(config: VoxtralConfig) -> dict:
    """params.json for ``config``: the text model's shapes at the top, the encoder's under
    ``multimodal.whisper_model_args``, as vLLM's params.json reader and the conversion script read them."""
    text, audio = config.text_config, config.audio_config
    return {
        "dim": text.hidden_size,
        "n_layers": text.num_hidden_layers,
        "head_dim": text.head_dim,
        "hidden_dim": text.intermediate_size,
        "n_heads": text.num_attention_heads,
        "n_kv_heads": text.num_key_value_heads,
        "rope_theta": text.rope_parameters["rope_theta"],
        "norm_eps": text.rms_norm_eps,
        "vocab_size": text.vocab_size,
        "max_seq_len": text.max_position_embeddings,
        "max_position_embeddings": text.max_position_embeddings,
        "tied_embeddings": bool(text.tie_word_embeddings),
        "multimodal": {
            "whisper_model_args": {
                "encoder_args": {
                    "audio_encoding_args": {
                        "sampling_rate": 16000,
                        "num_mel_bins": audio.num_mel_bins,
                        "hop_length": 160,
                        "window_size": 400,
                    },
                    "dim": audio.hidden_size,
                    "n_layers": audio.num_hidden_layers,
                    "head_dim": audio.hidden_size // audio.num_attention_heads,
                    "hidden_dim": audio.intermediate_size,
                    "n_heads": audio.num_attention_heads,
                    "vocab_size": audio.vocab_size,
                    "max_source_positions": audio.max_source_positions,
                },
                "downsample_args": {"downsample_factor": audio.intermediate_size // audio.hidden_size},
            }
        },
    }


def unrepresentable(config: VoxtralConfig) -> list[str]:
    """What of ``config`` Mistral's Voxtral layout cannot state (each a reason to refuse an export)."""
    text, audio = config.text_config, config.audio_config
    problems = []
    checks = [
        (config.audio_token_id == 24, f"audio_token_id {config.audio_token_id} (the format fixes [AUDIO] at 24)"),
        (text.hidden_act == "silu", f"text hidden_act {text.hidden_act!r} (the format's MLP is SwiGLU)"),
        (not text.attention_bias and not text.mlp_bias, "biases in the text model's attention or MLP"),
        (text.rope_parameters.get("rope_type", "default") == "default", f"rope scaling {text.rope_parameters}"),
        (config.projector_hidden_act == "gelu", f"projector activation {config.projector_hidden_act!r}"),
        (audio.activation_function == "gelu", f"encoder activation {audio.activation_function!r}"),
        (not audio.scale_embedding, "a scaled encoder embedding"),
        (
            audio.max_source_positions == 1500,
            f"max_source_positions {audio.max_source_positions} (runtimes cut 3000-frame pieces)",
        ),
        (
            audio.intermediate_size % audio.hidden_size == 0,
            "a projector input that is not a whole number of encoder frames",
        ),
    ]
    problems += [why for ok, why in checks if not ok]
    return problems


def distance_from_sinusoids(positions: torch.Tensor) -> float:
    """How far the encoder's positional embeddings are from the sinusoids every reader rebuilds
    (the largest absolute difference; 0 for Voxtral's own and for voxtral_exp's builds)."""
    return float((positions.detach().float().cpu() - sinusoids(*positions.shape)).abs().max())

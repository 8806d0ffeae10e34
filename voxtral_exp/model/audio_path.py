"""How audio reaches Voxtral's language model, when voxtral_exp (not transformers) places it.

transformers' Voxtral runs the encoder on whole 30 s chunks and requires the prompt to hold all
375 [AUDIO] tokens of each (`model.audio_tokens=chunk`, the released models' way; the model's own
forward does it). voxtral_exp builds the language model's input itself when:
- the encoder's output comes from the encoder cache (``encoder_states``);
- `model.audio_tokens=clip`: the prompt holds only the tokens that cover each clip
  (voxtral_exp.model.tokens), so each clip keeps only that many of its encoder rows
  (``audio_tokens`` per clip, ``audio_chunks`` per clip to tell them apart);
- `model.encoder_window=clip`: the encoder also runs on each clip's own frames only (its last
  chunk cut to the tokens it keeps, positional embeddings cut to match), as whisper.cpp's
  `audio_ctx` does.
A forward pre-hook on the inner VoxtralModel turns those inputs into ``inputs_embeds`` inside the
model's forward (so DDP, FSDP and PEFT see an ordinary forward); generation calls
``prompt_embeddings`` directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxtral_exp.model.tokens import AUDIO_TOKENS_PER_CHUNK, MEL_FRAMES_PER_TOKEN

AUDIO_INPUTS = ("encoder_states", "audio_tokens", "audio_chunks")  # batch keys the hook consumes


def encode(tower: torch.nn.Module, features: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """The encoder's output on ``features`` (chunks, mels, 3000), as the projector reads it: 4
    frames stacked per row, 375 rows per chunk; with ``frames``, on the first ``frames`` mel
    frames only (8 per row), positional embeddings cut to match (frames=3000 equals the plain
    encoder: tests/test_audio_tokens.py)."""
    if frames is None:
        hidden = tower(features).last_hidden_state
    else:  # VoxtralEncoder.forward, which insists on 3000 frames, on a shorter window
        x = features[..., :frames].to(tower.conv1.weight.dtype)
        x = F.gelu(tower.conv2(F.gelu(tower.conv1(x)))).permute(0, 2, 1)
        # the positions stay fp32 in a bf16 model (transformers keeps them so): add, then back to x's dtype
        x = (x + tower.embed_positions.weight[: x.shape[1]]).to(x.dtype)
        x = F.dropout(x, p=tower.dropout, training=tower.training)
        for layer in tower.layers:
            x = layer(x, attention_mask=None)
        hidden = tower.layer_norm(x)
    return hidden.reshape(-1, tower.config.intermediate_size)


def encode_clips(
    tower: torch.nn.Module, features: torch.Tensor, chunks: list[int], tokens: list[int], window: bool
) -> torch.Tensor:
    """Each clip's encoder rows, the first ``tokens[i]`` of its ``chunks[i]`` chunks, in clip
    order. ``window``: each clip's last chunk is encoded on the frames of its kept tokens only.

    A clip's rows do not depend on the clips batched with it: chunks are encoded independently,
    and last chunks are encoded together only with those of the same window (never padded to
    another clip's), so training, the cache, evaluation and transcribe compute the same rows."""
    first = [sum(chunks[:i]) for i in range(len(chunks))]
    last = [start + k - 1 for start, k in zip(first, chunks)]
    kept_last = [n - AUDIO_TOKENS_PER_CHUNK * (k - 1) for n, k in zip(tokens, chunks)]
    if not window:
        rows = encode(tower, features).split([k * AUDIO_TOKENS_PER_CHUNK for k in chunks])
        return torch.cat([clip[:n] for clip, n in zip(rows, tokens)])
    pieces: dict[int, torch.Tensor] = {}  # chunk index -> its encoder rows
    whole = [i for i in range(features.shape[0]) if i not in last]  # earlier chunks of long clips
    if whole:
        pieces.update(zip(whole, encode(tower, features[whole]).split(AUDIO_TOKENS_PER_CHUNK)))
    for n in sorted(set(kept_last)):
        same = [chunk for chunk, kept in zip(last, kept_last) if kept == n]
        pieces.update(zip(same, encode(tower, features[same], n * MEL_FRAMES_PER_TOKEN).split(n)))
    return torch.cat([pieces[i] for start, k in zip(first, chunks) for i in range(start, start + k)])


def prompt_embeddings(
    voxtral: torch.nn.Module,
    input_ids: torch.Tensor,
    input_features: torch.Tensor | None = None,
    encoder_states: torch.Tensor | None = None,
    audio_tokens: torch.Tensor | None = None,
    audio_chunks: torch.Tensor | None = None,
    encoder_window: bool = False,
) -> torch.Tensor:
    """The token embeddings of ``input_ids`` with each [AUDIO] position holding the projector's
    output for its audio row, in order: what Voxtral's forward computes, for cached encoder
    output and for clip-length prompts. ``voxtral``: the inner VoxtralModel."""
    if encoder_states is None:
        chunks = audio_chunks.tolist() if audio_chunks is not None else [input_features.shape[0]]
        tokens = audio_tokens.tolist() if audio_tokens is not None else [k * AUDIO_TOKENS_PER_CHUNK for k in chunks]
        encoder_states = encode_clips(voxtral.audio_tower, input_features, chunks, tokens, encoder_window)
    embeddings = voxtral.get_input_embeddings()(input_ids)
    projector = voxtral.multi_modal_projector
    audio = projector(encoder_states.to(embeddings.device, projector.linear_1.weight.dtype))
    mask = input_ids == voxtral.config.audio_token_id
    if int(mask.sum()) != audio.shape[0]:
        raise ValueError(f"{int(mask.sum())} [AUDIO] tokens in the prompt but {audio.shape[0]} audio embeddings")
    return embeddings.masked_scatter(mask.unsqueeze(-1), audio.to(embeddings.dtype))


def batch_audio(features: list[dict]) -> dict[str, torch.Tensor]:
    """The audio part of a batch of featurised clips: cached encoder rows, or mel features (each
    clip one (mels, 3000) slice per started 30 s chunk) and, for clip-length prompts, each clip's
    token and chunk counts."""
    if "encoder_states" in features[0]:
        return {"encoder_states": torch.cat([f["encoder_states"] for f in features])}
    batch = {"input_features": torch.cat([f["input_features"] for f in features])}
    if "audio_tokens" in features[0]:
        batch["audio_tokens"] = torch.tensor([f["audio_tokens"] for f in features])
        batch["audio_chunks"] = torch.tensor([f["input_features"].shape[0] for f in features])
    return batch


def inner(model: torch.nn.Module) -> torch.nn.Module:
    """The VoxtralModel inside a VoxtralForConditionalGeneration, PEFT-wrapped or not."""
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).model


def encoder_window(model: torch.nn.Module) -> bool:
    """Whether ``model`` was attached with `model.encoder_window=clip`."""
    return getattr(inner(model), "_voxtral_exp_encoder_window", False)


def attach(model: torch.nn.Module, encoder_window: bool = False) -> torch.nn.Module:
    """Let ``model`` (a Voxtral, PEFT-wrapped or not) take the batch keys in ``AUDIO_INPUTS``:
    a forward pre-hook on its inner VoxtralModel turns them into ``inputs_embeds``."""
    voxtral = inner(model)
    if getattr(voxtral, "_voxtral_exp_audio_hook", None) is not None:
        voxtral._voxtral_exp_audio_hook.remove()
    voxtral._voxtral_exp_encoder_window = encoder_window

    def hook(module, args, kwargs):
        if not any(kwargs.get(key) is not None for key in AUDIO_INPUTS):
            return args, kwargs
        audio = {key: kwargs.pop(key, None) for key in AUDIO_INPUTS}
        kwargs["inputs_embeds"] = prompt_embeddings(
            module, kwargs.pop("input_ids"), kwargs.pop("input_features", None), **audio, encoder_window=encoder_window
        )
        return args, kwargs

    voxtral._voxtral_exp_audio_hook = voxtral.register_forward_pre_hook(hook, with_kwargs=True)
    return model

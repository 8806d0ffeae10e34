"""The training pipelines the speed benchmarks compare, and their work on the real 3B shapes.

Three pipelines train the same weights (LoRA r=8 on q/k/v/o of the language model, or the
language model + projector in full), so that a ratio measures speed, not method:
- ``voxtral_exp``: examples featurised in loader workers, logits only at label positions;
- ``reference``: the upstream pipeline's compute path (benchmarks/reference.py): the processor
  per batch in the collator, the model's own loss over the full 131072-wide logits;
- ``axolotl-style``: examples featurised ahead (as axolotl's preprocessed datasets), and a fused
  linear cross-entropy over every position that never materialises the logits (Liger's kernel,
  or Apple's cut-cross-entropy, whichever is installed; on a CPU without either, the same loss
  chunked and recomputed in plain torch).

Method changes are separate options: ``encoder_adapters`` (the reference's plain name match,
which also puts LoRA into the audio encoder) and ``train_embeddings=False`` (full fine-tuning
with the token embeddings and output layer fixed).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.checkpoint import checkpoint

PIPELINES = ("voxtral_exp", "reference", "axolotl-style")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # LoRA targets, as in the reference
IGNORE = -100


def apply_training_method(model, method: str, encoder_adapters: bool = False, train_embeddings: bool = True):
    """LoRA (language model only, or both towers) or full fine-tuning of LM + projector."""
    from peft import LoraConfig, get_peft_model

    from voxtral_exp.model.modeling import apply_method

    if method == "lora" and encoder_adapters:  # the reference's name match reaches the encoder
        return get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS))
    cfg = (
        {"name": "lora", "r": 8, "alpha": 32, "dropout": 0.0, "train_projector": False, "target_modules": TARGETS}
        if method == "lora"
        else {"name": "full", "freeze_audio_tower": True, "train_projector": True, "train_embeddings": train_embeddings}
    )
    return apply_method(model, OmegaConf.create(cfg))


def fused_linear_cross_entropy():
    """(name, loss(hidden [N, H], weight [V, H], targets [N]) -> mean over non-ignored targets)."""
    try:
        from liger_kernel.transformers.functional import (
            liger_fused_linear_cross_entropy,
        )

        def liger(hidden, weight, targets):
            return liger_fused_linear_cross_entropy(hidden, weight, targets, ignore_index=IGNORE)

        if torch.cuda.is_available():
            return "Liger fused linear cross-entropy", liger
    except ImportError:
        pass
    try:
        from cut_cross_entropy import linear_cross_entropy

        if torch.cuda.is_available():
            return "cut-cross-entropy", lambda h, w, t: linear_cross_entropy(h, w, t, ignore_index=IGNORE)
    except ImportError:
        pass
    return "chunked cross-entropy (plain torch, recomputed)", chunked_linear_cross_entropy


def chunked_linear_cross_entropy(hidden, weight, targets, chunk: int = 512):
    """Cross-entropy of ``hidden @ weight.T`` over every position, a chunk of rows at a time,
    each chunk's logits recomputed in backward: the full logits never exist at once."""

    def chunk_loss(h, t):
        return F.cross_entropy((h @ weight.T).float(), t, ignore_index=IGNORE, reduction="sum")

    total = sum(
        checkpoint(chunk_loss, hidden[i : i + chunk], targets[i : i + chunk], use_reentrant=False)
        for i in range(0, hidden.shape[0], chunk)
    )
    return total / (targets != IGNORE).sum().clamp(min=1)


def fused_loss(model, inputs: dict, loss_fn) -> torch.Tensor:
    """The axolotl-style loss: the model's last hidden states, then a fused linear
    cross-entropy with the output layer over every next-token position."""
    from voxtral_exp.model.modeling import unwrap_peft

    voxtral = unwrap_peft(model)
    hidden = voxtral.model(
        input_ids=inputs["input_ids"], input_features=inputs["input_features"], attention_mask=inputs["attention_mask"]
    ).last_hidden_state
    labels = inputs["labels"]
    return loss_fn(
        hidden[:, :-1].reshape(-1, hidden.shape[-1]),
        voxtral.lm_head.weight,
        labels[:, 1:].reshape(-1).to(hidden.device),
    )


def make_trainer(
    pipeline: str,
    model,
    examples,
    processor,
    training_args,
    callbacks=(),
    label_only: bool = True,
    audio_tokens: str = "chunk",
):
    """A Trainer that trains ``model`` on ``examples`` the way ``pipeline`` does (voxtral_exp: with
    ``audio_tokens`` per clip, chunk or clip)."""
    from transformers import Trainer

    from benchmarks.reference import ReferenceCollator, RowsDataset
    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.featurize import Featurizer
    from voxtral_exp.training.collator import TranscriptionCollator
    from voxtral_exp.training.loss import label_only_loss
    from voxtral_exp.training.trainer import VoxtralTrainer

    pad = processor.tokenizer.pad_token_id
    common = dict(model=model, args=training_args, callbacks=list(callbacks))
    if pipeline == "reference":
        return Trainer(train_dataset=RowsDataset(examples), data_collator=ReferenceCollator(processor), **common)
    dataset = SpeechDataset(examples, Featurizer(processor, "offline", audio_tokens=audio_tokens))
    if pipeline == "voxtral_exp":
        return VoxtralTrainer(
            train_dataset=dataset,
            data_collator=TranscriptionCollator(pad, label_only_logits=label_only),
            compute_loss_func=label_only_loss if label_only else None,
            length_groups=dataset.length_groups(),
            **common,
        )
    if pipeline == "axolotl-style":
        name, loss_fn = fused_linear_cross_entropy()

        class FusedCrossEntropyTrainer(Trainer):
            loss_name = name

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                return fused_loss(model, inputs, loss_fn)

        return FusedCrossEntropyTrainer(train_dataset=dataset, data_collator=TranscriptionCollator(pad), **common)
    raise ValueError(f"pipeline {pipeline!r}: expected one of {PIPELINES}")


@functools.cache
def model_3b(method: str, encoder_adapters: bool, train_embeddings: bool, layers: int | None = None):
    """Voxtral-Mini-3B's architecture on the meta device (no memory), with a training method;
    ``layers``: cut to that many layers per tower (benchmarks/training_speed.py --only real)."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    with torch.device("meta"):
        config = VoxtralConfig()  # no arguments: the 3B architecture
        if layers:
            config.text_config.num_hidden_layers = config.audio_config.num_hidden_layers = layers
        config._attn_implementation = "sdpa"
        return apply_training_method(
            VoxtralForConditionalGeneration(config), method, encoder_adapters, train_embeddings
        )


def flops_3b(
    pipeline: str, method: str, encoder_adapters: bool = False, train_embeddings: bool = True, **shape
) -> float:
    """FLOPs of one training sample (forward + backward) on Voxtral-Mini-3B's real shapes: the
    encoder's and the rest's (``work_3b``) together."""
    return sum(work_3b(pipeline, method, encoder_adapters, train_embeddings, **shape))


def work_3b(
    pipeline: str,
    method: str,
    encoder_adapters: bool = False,
    train_embeddings: bool = True,
    text_tokens: int = 24,
    audio_tokens: int = 375,
    encoder_frames: int = 3000,
    layers: int | None = None,
) -> tuple[float, float]:
    """(encoder, everything else) FLOPs of one training sample (forward + backward) on
    Voxtral-Mini-3B's real shapes, counted by torch's flop counter on the meta device (no memory,
    no weights): ``audio_tokens`` audio tokens (375: one 30 s chunk; fewer: a clip's own,
    `model.audio_tokens=clip`) after an 8-token prompt, then ``text_tokens`` transcript tokens;
    the encoder on ``encoder_frames`` mel frames (3000: a whole chunk; 8 per audio token:
    `model.encoder_window=clip`). The frozen encoder has no backward; with the encoder cache its
    share is paid once, not every epoch.

    The meta device cannot run Voxtral's boolean placement of the audio embeddings (it depends on
    data), so the forward is spelled out with the same operations: encoder, projector, audio
    embeddings placed between the prompt's token embeddings, the language model, then the
    pipeline's output layer and loss: label positions only, every position (reference), or every
    position a chunk at a time (axolotl-style: the same FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    from voxtral_exp.model.audio_path import encode
    from voxtral_exp.model.modeling import audio_modules, unwrap_peft

    model = model_3b(method, encoder_adapters, train_embeddings, layers)
    config = unwrap_peft(model).config
    with torch.device("meta"):
        voxtral = unwrap_peft(model)
        tower, projector = audio_modules(model)
        prompt_before, prompt_after = 3, 5
        length = prompt_before + audio_tokens + prompt_after + text_tokens
        ids = torch.zeros(1, length, dtype=torch.long)
        targets = torch.zeros(text_tokens, dtype=torch.long)
        with FlopCounterMode(display=False) as encoder:
            features = torch.zeros(1, config.audio_config.num_mel_bins, 3000)
            states = encode(tower, features, None if encoder_frames == 3000 else encoder_frames)[:audio_tokens]
        with FlopCounterMode(display=False) as rest:
            audio = projector(states)
            embeds = voxtral.get_input_embeddings()(ids)
            embeds = torch.cat(
                [embeds[:, :prompt_before], audio[None], embeds[:, prompt_before + audio_tokens :]], dim=1
            )
            hidden = voxtral.model.language_model(inputs_embeds=embeds).last_hidden_state
            if pipeline == "voxtral_exp":  # logits where the next token is a label
                logits = voxtral.lm_head(hidden[0, length - text_tokens - 1 : length - 1])
                loss = F.cross_entropy(logits.float(), targets)
            else:
                logits = voxtral.lm_head(hidden[0, :-1]).float()
                loss = F.cross_entropy(logits[-text_tokens:], targets)
            loss.backward()
    return float(encoder.get_total_flops()), float(rest.get_total_flops())


def prefill_3b(audio_tokens: int = 375, encoder_frames: int = 3000, prompt_tokens: int = 8) -> tuple[float, float]:
    """(encoder, language model) FLOPs of transcription's prefill for one clip on
    Voxtral-Mini-3B's real shapes (meta device): the encoder on ``encoder_frames`` mel frames, the
    projector, and the language model's forward over the prompt (``audio_tokens`` [AUDIO] tokens
    inside ``prompt_tokens`` text tokens), with the logits of its last position only, as
    generation computes them. Decoding is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from voxtral_exp.model.audio_path import encode
    from voxtral_exp.model.modeling import audio_modules

    voxtral = model_3b("full", False, True)
    with torch.device("meta"), torch.no_grad():
        tower, projector = audio_modules(voxtral)
        with FlopCounterMode(display=False) as encoder:
            features = torch.zeros(1, voxtral.config.audio_config.num_mel_bins, 3000)
            states = encode(tower, features, None if encoder_frames == 3000 else encoder_frames)[:audio_tokens]
        with FlopCounterMode(display=False) as rest:
            audio = projector(states)
            embeds = voxtral.get_input_embeddings()(torch.zeros(1, prompt_tokens, dtype=torch.long))
            embeds = torch.cat([embeds[:, :3], audio[None], embeds[:, 3:]], dim=1)
            hidden = voxtral.model.language_model(inputs_embeds=embeds).last_hidden_state
            voxtral.lm_head(hidden[:, -1:])
    return float(encoder.get_total_flops()), float(rest.get_total_flops())


def clips_of(examples, seconds: float, folder: Path):
    """Examples of exactly ``seconds`` each: the sample clips strung together and cut, as WAV."""
    import numpy as np
    import soundfile as sf

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.example import Example

    speech = np.concatenate([load_audio(e.audio) for e in examples[:27]])
    n = int(seconds * 16000)
    out = []
    for i, example in enumerate(examples):
        start = (i * 7919) % max(1, len(speech) - n)
        path = folder / f"clip{i}.wav"
        sf.write(path, np.resize(speech[start:], n), 16000)
        out.append(Example(str(path), example.text, example.language))
    return out

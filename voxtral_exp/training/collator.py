"""Collate featurised examples (voxtral_exp.data.featurize) into padded batches.

input_ids: <prompt ids> <target ids> <pad>...      (right-padded for training)
labels:    -100 ............ <target ids> -100...  (exactly the transcript and its EOS)
"""

from __future__ import annotations

from typing import Any

import torch

from voxtral_exp.model.audio_path import batch_audio
from voxtral_exp.model.tokens import IGNORE_INDEX


class TranscriptionCollator:
    """Right-pads prompt + target sequences; labels cover exactly the target tokens."""

    def __init__(self, pad_token_id: int, label_only_logits: bool = False):
        self.pad_token_id = pad_token_id
        self.label_only_logits = label_only_logits  # add the mask voxtral_exp.training.loss uses

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        sequences = [torch.cat([f["prompt_ids"], f["target_ids"]]) for f in features]
        length = max(len(s) for s in sequences)
        input_ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for i, (f, seq) in enumerate(zip(features, sequences)):
            n_prompt = len(f["prompt_ids"])
            input_ids[i, : len(seq)] = seq
            labels[i, n_prompt : len(seq)] = f["target_ids"]
            attention_mask[i, : len(seq)] = 1
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        batch.update(batch_audio(features))
        if self.label_only_logits:
            # positions whose next token is a label: the only logits the loss needs
            batch["logits_to_keep"] = torch.zeros_like(labels, dtype=torch.bool)
            batch["logits_to_keep"][:, :-1] = labels[:, 1:] != IGNORE_INDEX
        return batch

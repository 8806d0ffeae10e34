"""Next-token loss with the output layer computed only where labels exist.

The vocabulary is 131072 wide, but only the transcript tokens (a few percent of a sequence
that is mostly 375 audio tokens per chunk) carry a loss. Passing the model a boolean
``logits_to_keep`` mask makes it project just those positions; the loss is then the same
sum-over-tokens / number-of-tokens as transformers' ForCausalLMLoss, to float tolerance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxtral_exp.model.tokens import IGNORE_INDEX


def label_only_loss(outputs, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None):
    """Trainer ``compute_loss_func``: ``outputs.logits`` holds only the masked positions."""
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX].to(outputs.logits.device)
    loss = F.cross_entropy(outputs.logits.float(), targets, reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else targets.numel()
    if isinstance(denominator, torch.Tensor):
        denominator = denominator.to(loss.device)
    return loss / denominator

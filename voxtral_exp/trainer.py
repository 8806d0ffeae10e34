"""transformers' Trainer, with checkpoints that its own reload reads back."""

from __future__ import annotations

import functools
from pathlib import Path

from transformers import PreTrainedModel, Trainer


class VoxtralTrainer(Trainer):
    """Trainer whose checkpoints keep the model's own parameter names.

    transformers 5 saves Voxtral under its legacy checkpoint key names, but the Trainer reloads
    checkpoints (resume, load_best_model_at_end) with a plain ``load_state_dict``, which then
    loads nothing and only warns. Checkpoints under ``output_dir`` are therefore written with
    ``save_original_format=False``; ``from_pretrained`` reads both layouts, and anything saved
    elsewhere (``final/``) keeps the standard layout.
    """

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        is_checkpoint = output_dir is not None and Path(output_dir).parent == Path(self.args.output_dir)
        if not (is_checkpoint and isinstance(model, PreTrainedModel)):
            return super()._save(output_dir, state_dict)
        model.save_pretrained = functools.partial(type(model).save_pretrained, model, save_original_format=False)
        try:
            return super()._save(output_dir, state_dict)
        finally:
            del model.save_pretrained  # back to the class method

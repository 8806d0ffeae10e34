"""Turn the `dataset` config group into train and eval example lists."""

from __future__ import annotations

import logging
import random

from omegaconf import DictConfig

from voxtral_exp.data.example import Example
from voxtral_exp.data.manifest import read_manifest

log = logging.getLogger(__name__)


def load_examples(cfg: DictConfig, seed: int) -> tuple[list[Example], list[Example]]:
    """Train and eval examples for ``cfg`` (the `dataset` node)."""
    if cfg.name != "jsonl":
        raise NotImplementedError(f"dataset={cfg.name} is not available yet; use dataset=jsonl")
    train = read_manifest(cfg.train_manifest, cfg.audio_root)
    if cfg.eval_manifest:
        evaluation = read_manifest(cfg.eval_manifest, cfg.audio_root)
    else:
        train, evaluation = split(train, cfg.eval_fraction, seed)
    if cfg.max_train_samples:
        train = train[: cfg.max_train_samples]
    if cfg.max_eval_samples:
        evaluation = evaluation[: cfg.max_eval_samples]
    log.info("Data <dataset=%s>: %d train / %d eval examples", cfg.name, len(train), len(evaluation))
    return train, evaluation


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded random split; the eval part gets at least one example."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(examples) * eval_fraction))
    eval_ids = set(order[:n_eval])
    return (
        [e for i, e in enumerate(examples) if i not in eval_ids],
        [e for i, e in enumerate(examples) if i in eval_ids],
    )

"""Splitting examples into train and eval: a seeded hold-out, the head of a dataset, a cap."""

from __future__ import annotations

import random

from voxtral_exp.data.example import Example


def holdout(n: int, eval_fraction: float, seed: int) -> set[int]:
    """Indices of a seeded random `eval_fraction` of n rows (at least one)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return set(order[: max(1, round(n * eval_fraction))])


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded random split; the eval part gets at least one example."""
    eval_ids = holdout(len(examples), eval_fraction, seed)
    return (
        [e for i, e in enumerate(examples) if i not in eval_ids],
        [e for i, e in enumerate(examples) if i in eval_ids],
    )


def limit(examples, n: int | None):
    """The first ``n`` examples (`dataset.max_train_samples` / `max_eval_samples`); all if None."""
    return examples[:n] if n else examples

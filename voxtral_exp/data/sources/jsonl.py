"""`dataset=jsonl`: local JSONL manifests (voxtral_exp, NeMo or Granary rows; data/manifest.py)."""

from __future__ import annotations

from omegaconf import DictConfig

from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.data.sources.base import Data
from voxtral_exp.data.splits import limit, split_examples


def read_jsonl(cfg: DictConfig, seed: int) -> Data:
    """The train manifest and the eval manifest, or a seeded `eval_fraction` split off the train one."""
    train, bad_train = read_manifest(cfg.train_manifest, cfg.audio_root)
    bad_eval = []
    if cfg.eval_manifest:
        evaluation, bad_eval = read_manifest(cfg.eval_manifest, cfg.audio_root)
    else:
        train, evaluation = split_examples(train, cfg.eval_fraction, seed)
    return Data(
        train=limit(train, cfg.max_train_samples),
        eval=limit(evaluation, cfg.max_eval_samples),
        bad_lines={"train": bad_train, "eval": bad_eval},
    )

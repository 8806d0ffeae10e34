"""`dataset=jsonl`: local JSONL manifests (voxtral_exp, NeMo or Granary rows; data/manifest.py)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.data.sources.base import Data
from voxtral_exp.data.splits import limit, split_examples

log = logging.getLogger(__name__)


def read_jsonl(cfg: DictConfig, seed: int) -> Data:
    """The train manifest and the eval manifest, or a seeded `eval_fraction` split off the train one."""
    train, bad_train = read_manifest(cfg.train_manifest, cfg.audio_root)
    bad_eval, report = [], {}
    if cfg.eval_manifest:
        evaluation, bad_eval = read_manifest(cfg.eval_manifest, cfg.audio_root)
    else:
        total = len(train)
        train, evaluation = split_examples(train, cfg.eval_fraction, seed)
        log.info(
            "Data <dataset.eval_manifest=null>: evaluating on %d of the %d examples of %s, held out "
            "(dataset.eval_fraction=%s, seed %d) and never trained on; dataset.eval_manifest=FILE evaluates on a set "
            "of your own",
            len(evaluation),
            total,
            cfg.train_manifest,
            cfg.eval_fraction,
            seed,
        )
        held_out = {"of": str(cfg.train_manifest), "eval_fraction": cfg.eval_fraction, "seed": seed}
        report["eval_held_out"] = {**held_out, "examples": len(evaluation)}
    return Data(
        train=limit(train, cfg.max_train_samples),
        eval=limit(evaluation, cfg.max_eval_samples),
        report=report,
        bad_lines={"train": bad_train, "eval": bad_eval},
    )

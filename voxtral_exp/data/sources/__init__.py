"""Turn the `dataset` config group into training and evaluation data: one module per source
(jsonl, hub, granary), each ending the same way, in ``Data``: a training set (map-style and
screened up front, or a stream filtered on the fly) plus a finite list of eval Examples (WER
needs a fixed set)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from voxtral_exp.data.filters import ExampleChecker, screen
from voxtral_exp.data.hf import RowsView
from voxtral_exp.data.sources.base import Data
from voxtral_exp.data.sources.granary import check_granary, read_granary
from voxtral_exp.data.sources.hub import read_hub
from voxtral_exp.data.sources.jsonl import read_jsonl

__all__ = ["Data", "load_data", "preflight", "read_data"]

log = logging.getLogger(__name__)
READERS = {"jsonl": read_jsonl, "hub": read_hub, "granary": read_granary}  # `dataset.reader`


def load_data(cfg: DictConfig, seed: int, tokenizer=None) -> Data:
    """`dataset` node -> Data; map-style sets are screened (errors raise or skip, filters drop).

    Every problem of a split (malformed manifest lines, rows that are no example, missing or
    unreadable files, empty transcripts) is found in one pass and reported together.
    """
    data = read_data(cfg, seed)
    checker = ExampleChecker(cfg.filters, tokenizer, decode=False) if cfg.prescan else None
    splits = [("eval", data.eval)] + ([] if data.streaming else [("train", data.train)])
    for split, examples in splits:
        keep, report = screen(examples, checker, cfg.on_error, split, data.bad_lines.get(split, []))
        data.report[split] = report.as_dict()
        if split == "eval":
            data.eval = [data.eval[i] for i in keep]
        else:
            data.train = data.train.subset(keep) if isinstance(data.train, RowsView) else [data.train[i] for i in keep]
    n_train = "streamed" if data.streaming else len(data.train)
    log.info("Data <dataset=%s>: %s train / %d eval examples", cfg.name, n_train, len(data.eval))
    if not data.eval:
        raise ValueError(f"dataset={cfg.name}: no eval examples left; check the eval split and dataset.filters")
    return data


def read_data(cfg: DictConfig, seed: int) -> Data:
    """The configured data as it is, nothing screened: rows that are no Example are in bad_lines
    (manifests, stream heads) or raise when read (map-style Hub rows)."""
    if cfg.reader not in READERS:
        raise ValueError(f"dataset.reader={cfg.reader!r}: expected one of {sorted(READERS)}")
    return READERS[cfg.reader](cfg, seed)


def preflight(cfg: DictConfig) -> None:
    """Checks that need the dataset's metadata but no data: run before anything heavy loads."""
    if cfg.reader == "granary":
        check_granary(cfg)

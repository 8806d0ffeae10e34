"""Turn the `dataset` config group into training and evaluation data: one module per source
(jsonl, hub, granary), each ending the same way, in ``Data``: a training set (map-style and
screened up front, or a stream filtered on the fly) plus a finite list of eval Examples (WER
needs a fixed set)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from voxtral_exp.data.filters import FILTERS, DataError, ExampleChecker, NoDataError, screen, summary
from voxtral_exp.data.hf import RowsView
from voxtral_exp.data.sources.base import Data
from voxtral_exp.data.sources.granary import check_granary, read_granary
from voxtral_exp.data.sources.hub import read_hub
from voxtral_exp.data.sources.jsonl import read_jsonl
from voxtral_exp.realtime.words import WordTimingError, attach_ctm, read_ctm

__all__ = ["Data", "load_data", "preflight", "read_data", "with_ctm_words"]

log = logging.getLogger(__name__)
READERS = {"jsonl": read_jsonl, "hub": read_hub, "granary": read_granary}  # `dataset.reader`


def load_data(cfg: DictConfig, seed: int, tokenizer=None, stream=None) -> Data:
    """`dataset` node -> Data; map-style sets are screened (errors raise or skip, filters drop).
    ``stream``: a Realtime model's StreamBuilder; every example needs word timings that fit its
    stream, from its row or `dataset.words_ctm`.

    Every problem of every split (malformed manifest lines, rows that are no example, missing or
    unreadable files, empty transcripts) is found in one pass and reported together; a split
    left with no example stops the run here, with the counts and the keys to change.
    """
    data = read_data(cfg, seed)
    if stream is not None:
        with_ctm_words(data, cfg)
    checker = ExampleChecker(cfg.filters, tokenizer, decode=False, stream=stream) if cfg.prescan else None
    splits = ([] if data.streaming else [("train", data.train)]) + [("eval", data.eval)]
    errors = {}
    for split, examples in splits:
        keep, report, errors[split] = screen(examples, checker, split, data.bad_lines.get(split, []))
        data.report[split] = report.as_dict()
        if report.dropped:
            log.warning("Data <dataset.on_error=%s>: %s: %s", cfg.on_error, split, summary(data.report[split]))
        if split == "eval":
            data.eval = [data.eval[i] for i in keep]
        else:
            data.train = data.train.subset(keep) if isinstance(data.train, RowsView) else [data.train[i] for i in keep]
    if cfg.on_error == "raise" and any(errors.values()):
        raise DataError({split: found for split, found in errors.items() if found})
    empty = [split for split, _ in splits if data.report[split]["kept"] == 0]
    if empty:
        raise NoDataError("\n".join(no_data_message(cfg, split, data.report[split]) for split in empty))
    n_train = "streamed" if data.streaming else len(data.train)
    log.info("Data <dataset=%s>: %s train / %d eval examples", cfg.name, n_train, len(data.eval))
    return data


def with_ctm_words(data: Data, cfg: DictConfig) -> None:
    """Rows without "words" take theirs from `dataset.words_ctm` (when set), in place."""
    if not cfg.get("words_ctm"):
        return
    if data.streaming:
        raise WordTimingError("dataset.words_ctm: word timings from CTM files need map-style data, not a stream")
    timings = read_ctm(cfg.words_ctm)
    train = list(data.train)
    both = attach_ctm(train + list(data.eval), timings)  # one file name, one clip, across both splits
    data.train, data.eval = both[: len(train)], both[len(train) :]


def no_data_message(cfg: DictConfig, split: str, report: dict) -> str:
    """Why a split is empty (its data_report entry), and which keys to change."""
    keys = "dataset.filters.min_duration / max_duration / max_label_tokens (null turns one off)"
    where = {"jsonl": f"dataset.{split}_manifest", "hub": f"dataset.{split}_split"}.get(cfg.reader, "dataset.*")
    if any(reason in FILTERS for reason in report["dropped"]):
        fix = f"loosen {keys}"
    elif report["dropped"]:
        fix = "fix the bad examples"
    else:
        fix = f"check {where}"
    return (
        f"dataset={cfg.name}: no {split} example left to {'train on' if split == 'train' else 'evaluate on'}: "
        f"{summary(report)}. Nothing was trained; {fix} (`python -m voxtral_exp.check` lists every example's fate)"
    )


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

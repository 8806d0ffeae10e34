"""`dataset=hub` (and the fleurs / voxpopuli presets): any `datasets` source, mapped by
`dataset.columns.*` (data/hf.py reads the rows)."""

from __future__ import annotations

from omegaconf import DictConfig

from voxtral_exp.data.hf import Columns, RowAdapter, RowsView, load_split, prepare
from voxtral_exp.data.languages import language_code
from voxtral_exp.data.sources.base import Data, hf_data, rest_after, take
from voxtral_exp.data.splits import holdout, limit


def read_hub(cfg: DictConfig, seed: int) -> Data:
    """The train split, and the eval split or a held-out part of the train split (the head of a
    stream, a seeded `eval_fraction` of a map-style split)."""
    columns = Columns(**cfg.columns)
    language = language_code(cfg.language)

    def split_of(name: str):
        where = f"{cfg.path}[{name}]"
        raw = load_split(cfg.path, name, cfg.config, cfg.streaming, cfg.revision, cfg.get("data_dir"))
        raw, found, labels = prepare(raw, columns, where)
        return raw, RowAdapter(found, where, cfg.audio_root, language, labels)

    train, adapter = split_of(cfg.train_split)
    bad_eval: list[str] = []
    if cfg.eval_split:
        raw, eval_adapter = split_of(cfg.eval_split)
        evaluation, bad_eval = take(raw, eval_adapter, cfg.max_eval_samples)
    elif cfg.streaming:  # hold out the head of the stream
        evaluation, bad_eval = take(train, adapter, cfg.max_eval_samples)
        train = rest_after(train, cfg.max_eval_samples, f"{cfg.path}[{cfg.train_split}]", "dataset.max_eval_samples")
    else:
        held_out = holdout(len(train), cfg.eval_fraction, seed)
        evaluation = RowsView(train, adapter, sorted(held_out))
        train = RowsView(train, adapter, [i for i in range(len(train)) if i not in held_out])
        return Data(train=limit(train, cfg.max_train_samples), eval=limit(evaluation, cfg.max_eval_samples))
    return hf_data(train, evaluation, bad_eval, adapter, cfg, seed)

"""Scan a whole dataset and report every problem at once, without training.

    python -m voxtral_exp.check dataset=jsonl dataset.train_manifest=train.jsonl
    python -m voxtral_exp.check dataset=hub dataset.path=/data/cv.parquet dataset.eval_split=null

Takes the same overrides as train.py. Filters are applied (durations from the row or the file
header, so a long file is filtered without being decoded); every example kept is fully decoded
(unreadable files, empty or NaN audio are found); a summary per split is printed. Exits 1 when
any example has an error (as opposed to being filtered out) or a split has no usable example.
"""

from __future__ import annotations

import sys
from itertools import islice

from hydra import compose, initialize_config_dir

from voxtral_exp.data.filters import FILTERS, ExampleChecker, Finding, SplitReport, summary
from voxtral_exp.data.sources import preflight, read_data, with_ctm_words
from voxtral_exp.errors import run_command
from voxtral_exp.model.processor import load_processor
from voxtral_exp.realtime.model import is_realtime
from voxtral_exp.realtime.model import load_processor as realtime_processor
from voxtral_exp.realtime.stream import StreamBuilder
from voxtral_exp.run.config import ROOT

STREAM_LIMIT = 10_000  # rows checked from a stream (it may be endless)


def check(overrides: list[str]) -> dict[str, SplitReport]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    preflight(cfg.dataset)
    model = cfg.model
    name = None if model.random_init else model.name_or_path
    if is_realtime(model):  # word timings are checked too
        processor = realtime_processor(name, model.revision, model.delay_ms, model.text_config.get("vocab_size"))
    else:
        processor = load_processor(name, model.revision)
    stream = StreamBuilder(processor) if is_realtime(model) else None
    checker = ExampleChecker(cfg.dataset.filters, processor.tokenizer, decode=True, stream=stream)
    data = read_data(cfg.dataset, cfg.seed)  # unscreened: every row is checked below, fully decoded
    if is_realtime(model):
        with_ctm_words(data, cfg.dataset)
    train = islice(data.train, STREAM_LIMIT) if data.streaming else data.train
    reports = {}
    for split, examples in (("train", train), ("eval", data.eval)):
        report = reports[split] = SplitReport()
        for found in [Finding.bad_line(line) for line in data.bad_lines.get(split, [])] + list(
            _findings(examples, checker, split, data.adapter if split == "train" and data.streaming else None)
        ):
            report.add(found)
            if found is not None:
                print(f"{'ERROR ' if found.is_error else 'filter'} {found}")
    return reports


def _findings(examples, checker: ExampleChecker, split: str, adapter=None):
    """One finding (or None) per example; streamed rows are turned into examples by ``adapter``."""
    for index, item in enumerate(examples) if adapter else ((i, None) for i in range(len(examples))):
        try:
            example = adapter(item, index) if adapter else examples[index]
            yield checker(example)
        except Exception as e:  # noqa: BLE001 - report it and go on scanning
            yield Finding(f"{split} row {index}", "bad_row", str(e))


def main(argv: list[str] | None = None) -> int:
    overrides = sys.argv[1:] if argv is None else argv
    reports = check(overrides)
    errors = 0
    print("\nsummary:")
    for split, report in reports.items():
        print(f"  {split}: {summary(report.as_dict())}")
        errors += sum(n for reason, n in report.dropped.items() if reason not in FILTERS)
    print(f"{errors} example(s) with errors" if errors else "no errors")
    empty = [split for split, report in reports.items() if report.kept == 0]
    for split in empty:
        print(
            f"error: no usable {split} example: a run would stop before training (see the findings above; "
            "dataset.filters.* and dataset.max_eval_samples decide what is kept)"
        )
    return 1 if errors or empty else 0


if __name__ == "__main__":
    run_command(main)

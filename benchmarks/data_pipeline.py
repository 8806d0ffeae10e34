"""Data-pipeline throughput: clips/s of the reference pipeline and voxtral_exp's, at equal
DataLoader worker counts (0, 1, 2), sides alternated.

    .venv/bin/python benchmarks/data_pipeline.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/data_pipeline.py --smoke    # seconds; used by the tests

Reference (benchmarks/reference.py): decoding and the processor run per batch inside the collator.
voxtral_exp: examples are decoded and featurised per example (the fast featuriser, identical
output), the collator only pads. Same clips, batch size, audio decoding and worker count on both
sides; each measurement is one pass over the clips, worker start-up included (as in training).
Protocol: one warm-up pass of each side, then --rounds rounds with the order alternated
(reference, ours / ours, reference, ...); median and min-max spread per side.

What carries to the real model: the work is per clip (decoding, resampling, 128-bin log-mel over
30 s chunks, tokenising) and does not depend on the model's size. On a GPU the question is
whether it keeps up with a training step: Voxtral-Mini-3B's LoRA step at batch 8 takes ~8
samples x 7.8 TFLOP / (989 TFLOP/s x MFU); at 35% MFU that is ~0.18 s, i.e. ~44 clips/s the
loader must deliver (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.reference import ReferenceCollator, RowsDataset  # noqa: E402
from voxtral_exp.data.dataset import SpeechDataset  # noqa: E402
from voxtral_exp.data.featurize import Featurizer  # noqa: E402
from voxtral_exp.data.manifest import read_manifest  # noqa: E402
from voxtral_exp.model.processor import build_offline_processor  # noqa: E402
from voxtral_exp.training.collator import TranscriptionCollator  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "train.jsonl"


def clips_per_second(dataset, collate, workers: int, batch_size: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    start = time.perf_counter()
    n = sum(batch["input_ids"].shape[0] for batch in loader)  # worker start-up counts, as in training
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few clips, to check the script runs")
    parser.add_argument("--repeat", type=int, default=4, help="passes over the 27 sample clips per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternated measurements per side and worker count")
    parser.add_argument("--batch-size", type=int, default=2, help="the reference's default is 2")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per process: workers, not intra-op threads, use the cores
    examples = read_manifest(SAMPLE)[0] * (1 if args.smoke else args.repeat)
    if args.smoke:
        examples, args.rounds = examples[:6], 1
    processor = build_offline_processor()
    sides = {
        "reference": (RowsDataset(examples), ReferenceCollator(processor)),
        "voxtral_exp": (
            SpeechDataset(examples, Featurizer(processor, "offline")),
            TranscriptionCollator(processor.tokenizer.pad_token_id, label_only_logits=True),
        ),
    }
    print(
        f"data pipeline: {len(examples)} clips per pass, batch {args.batch_size}, {os.cpu_count()} CPU cores, "
        f"{args.rounds} alternated rounds after a warm-up pass of each side"
    )
    print(f"{'workers':<9}{'reference clips/s':>26}{'voxtral_exp clips/s':>26}{'ratio':>8}")
    for workers in (0, 1, 2):
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for dataset, collate in sides.values():  # warm-up: file cache, tokenizer, first imports
            clips_per_second(dataset, collate, workers, args.batch_size)
        for round_ in range(args.rounds):
            for name in sides if round_ % 2 == 0 else reversed(list(sides)):
                rates[name].append(clips_per_second(*sides[name], workers, args.batch_size))
        ref, ours = (statistics.median(rates[n]) for n in sides)
        cells = [f"{statistics.median(r):.1f} ({min(r):.1f}-{max(r):.1f})" for r in rates.values()]
        print(f"{workers:<9}{cells[0]:>26}{cells[1]:>26}{ours / ref:>7.2f}x")


if __name__ == "__main__":
    main()

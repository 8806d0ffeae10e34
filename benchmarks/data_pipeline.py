"""Data-pipeline throughput: clips/s of the reference pipeline versus voxtral_exp's.

    .venv/bin/python benchmarks/data_pipeline.py            # full run (~1 min on 2 cores)
    .venv/bin/python benchmarks/data_pipeline.py --smoke    # seconds; used by the tests

Reference (DESIGN.md): decoding and the processor run per batch inside the collator, in the
main process (and, at its default dataloader_num_workers=1, in one worker). voxtral_exp:
examples are decoded and featurised per example inside DataLoader workers (the fast
featuriser, identical output), the collator only pads. Same clips, batch size and audio decode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.reference import ReferenceCollator, RowsDataset  # noqa: E402
from voxtral_exp.collator import Featurizer, TranscriptionCollator  # noqa: E402
from voxtral_exp.data.dataset import SpeechDataset  # noqa: E402
from voxtral_exp.data.manifest import read_manifest  # noqa: E402
from voxtral_exp.processor import build_offline_processor  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "train.jsonl"


def clips_per_second(dataset, collate, workers: int, batch_size: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    start = time.perf_counter()
    n = sum(batch["input_ids"].shape[0] for batch in loader)  # worker start-up counts, as in training
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few clips, to check the script runs")
    parser.add_argument("--repeat", type=int, default=6, help="passes over the 27 sample clips")
    parser.add_argument("--batch-size", type=int, default=2, help="the reference's default is 2")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per process: workers, not intra-op threads, use the cores
    examples = read_manifest(SAMPLE)[0] * (1 if args.smoke else args.repeat)
    if args.smoke:
        examples = examples[:6]
    processor = build_offline_processor()
    featurizer = Featurizer(processor, "offline")
    ours = SpeechDataset(examples, featurizer)
    collate = TranscriptionCollator(processor.tokenizer.pad_token_id, label_only_logits=True)

    results = {
        "reference, main process": clips_per_second(RowsDataset(examples), ReferenceCollator(processor), 0, args.batch_size),
        "reference, 1 worker (its default)": clips_per_second(RowsDataset(examples), ReferenceCollator(processor), 1, args.batch_size),
        "voxtral_exp, 1 worker": clips_per_second(ours, collate, 1, args.batch_size),
        "voxtral_exp, 2 workers": clips_per_second(ours, collate, 2, args.batch_size),
    }
    baseline = results["reference, main process"]
    print(f"data pipeline: {len(examples)} clips, batch {args.batch_size}, {os.cpu_count()} CPU cores")
    print(f"{'pipeline':<36} {'clips/s':>8} {'vs reference':>13}")
    for name, rate in results.items():
        print(f"{name:<36} {rate:8.1f} {rate / baseline:12.2f}x")


if __name__ == "__main__":
    main()

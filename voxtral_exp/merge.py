"""Merge a LoRA run's adapter into its base model: a plain transformers model to deploy.

    python -m voxtral_exp.merge RUN_DIR [--out DIR]      # default: RUN_DIR/final/merged

The merged model's outputs equal base + adapter (to float rounding); the processor is copied, and
with it how the model reads audio (processor_config.json: voxtral_exp.model.audio_rule).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from voxtral_exp.errors import UserError, run_command
from voxtral_exp.model.audio_rule import read_rule, save_rule
from voxtral_exp.model.modeling import merged_model
from voxtral_exp.model.processor import load_processor
from voxtral_exp.realtime import model as realtime
from voxtral_exp.run.record import final_dir

log = logging.getLogger("voxtral_exp.merge")


def merge(path: Path, out: Path | None = None) -> Path:
    adapter_dir = final_dir(path)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json): only method=lora runs merge")
    out = out or adapter_dir / "merged"
    if realtime.saved_is_realtime(adapter_dir):  # its delay is in the tokenizer file the processor copies
        realtime.load_trained(adapter_dir).merge_and_unload().save_pretrained(str(out))
        realtime.load_processor(str(adapter_dir)).save_pretrained(str(out))
        log.info("Merged %s into %s", adapter_dir, out)
        return out
    merged = merged_model(adapter_dir)
    merged.save_pretrained(str(out))
    processor = load_processor(str(adapter_dir))
    save_rule(processor, read_rule(processor, adapter_dir))  # a run saved before 2026-12 had it in audio.json
    processor.save_pretrained(str(out))
    log.info("Merged %s into %s", adapter_dir, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a LoRA run directory (or its final/)")
    parser.add_argument("--out", type=Path, help="where to write the merged model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print(merge(args.run_dir.resolve(), args.out))


if __name__ == "__main__":
    run_command(main)

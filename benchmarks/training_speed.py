"""Training throughput and memory: the reference pipeline versus voxtral_exp, same data, model
and hyperparameters, each in its own process (so peak memory is its own).

    .venv/bin/python benchmarks/training_speed.py               # CPU, scaled-down model (~6 min)
    .venv/bin/python benchmarks/training_speed.py --smoke       # seconds; used by the tests
    python benchmarks/training_speed.py --gpu                   # real Voxtral-Mini-3B architecture,
                                                                # random weights, one CUDA GPU

Reference (shared/DESIGN.md): processor called per batch inside the collator (one loader
worker), LoRA r=8/alpha=32 on q/k/v/o of *both* towers (the name match reaches the encoder),
the full 131072-wide logits for the loss, no cache, no grouping. voxtral_exp: examples
featurised in a loader worker, LoRA on the language model only (the encoder builds no graph),
logits only at label positions, batches grouped by chunk count. Both: batch 2, lr 5e-5, fp32 on
CPU and bf16 on GPU, HF Trainer. A third run measures the encoder cache: epoch 1
(filling it) against epoch 2 (reading it).

CPU model ("scaled"): Voxtral-Mini-3B with widths / 8 and depths / 10 (text 384 wide, 3 layers,
4 heads, 1 KV head; encoder 160 wide, 3 layers) and the real 131072-token vocabulary, which the
tokenizer fixes; the output layer therefore weighs relatively more than in the 3B model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALED = {
    "text": {"hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 3, "num_attention_heads": 4,
             "num_key_value_heads": 1, "head_dim": 96, "vocab_size": 131072},
    "audio": {"hidden_size": 160, "intermediate_size": 640, "num_hidden_layers": 3, "num_attention_heads": 2},
}


ABLATIONS = ("without: label-only logits", "without: LoRA kept to the LM", "without: loader worker")


def build(kind: str, args):
    """(model, train dataset, collator, trainer class, trainer kwargs) for one pipeline."""
    import torch
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer

    from benchmarks.reference import ReferenceCollator, RowsDataset
    from voxtral_exp.collator import Featurizer, TranscriptionCollator
    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.loss import label_only_loss
    from voxtral_exp.modeling import apply_method, build_model
    from voxtral_exp.processor import build_offline_processor
    from voxtral_exp.trainer import VoxtralTrainer

    dtype = torch.bfloat16 if args.gpu else torch.float32
    model_cfg = OmegaConf.create({"name": "bench", "random_init": True, "attn_implementation": "sdpa",
                                  "text_config": {} if args.gpu else SCALED["text"],
                                  "audio_config": {} if args.gpu else SCALED["audio"]})
    model = build_model(model_cfg, dtype, seed=0)
    processor = build_offline_processor()
    examples = read_manifest(ROOT / "data" / "sample" / "train.jsonl")[0]
    examples = (examples * 4)[: args.clips]
    if kind == "reference":
        lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        model = get_peft_model(model, lora)
        return model, RowsDataset(examples), ReferenceCollator(processor), Trainer, {}
    method = OmegaConf.create({"name": "lora", "r": 8, "alpha": 32, "dropout": 0.0, "train_projector": False,
                               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})
    if kind == "without: LoRA kept to the LM":  # ablation: the reference's name match, encoder included
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0,
                                                 target_modules=list(method.target_modules)))
    else:
        model = apply_method(model, method)
    dataset = SpeechDataset(examples, Featurizer(processor, "offline"))
    label_only = kind != "without: label-only logits"
    kwargs = {"compute_loss_func": label_only_loss if label_only else None, "chunk_counts": dataset.chunk_counts()}
    return model, dataset, TranscriptionCollator(11, label_only_logits=label_only), VoxtralTrainer, kwargs


def run_one(kind: str, args) -> dict:
    """Train one pipeline for args.steps steps; time steps after warm-up."""
    import torch
    from transformers import TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    model, dataset, collator, trainer_class, kwargs = build(kind, args)
    cache_dir = tempfile.mkdtemp() if kind == "cache" else None
    if cache_dir:
        from voxtral_exp.encoder_cache import EncoderCache

        cache = EncoderCache(cache_dir, model)

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_times, self.epoch_times, self.t = [], [], None

        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if args.gpu:
                torch.cuda.synchronize()
            self.step_times.append(time.perf_counter() - self.t)

        def on_epoch_begin(self, *a, **k):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, *a, **k):
            self.epoch_times.append(time.perf_counter() - self.epoch_start)

    timer = Timer()
    epochs = 2 if kind == "cache" else None
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size, learning_rate=5e-5,
        max_steps=-1 if epochs else args.steps, num_train_epochs=epochs or 1, save_strategy="no",
        eval_strategy="no", report_to="none", logging_steps=10_000, use_cpu=not args.gpu, bf16=args.gpu,
        dataloader_num_workers=0 if kind == "without: loader worker" else 1,
        dataloader_persistent_workers=kind != "without: loader worker", remove_unused_columns=False, label_names=["labels"], disable_tqdm=True,
        dataloader_pin_memory=args.gpu,
    )
    trainer = trainer_class(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                            callbacks=[timer], **kwargs)
    fill_seconds = 0.0
    if cache_dir:
        start = time.perf_counter()
        model.to(training_args.device)
        cache.fill(model, dataset, batch_size=args.batch_size, num_workers=1)
        fill_seconds = time.perf_counter() - start
        dataset.cache = cache  # epoch 1 = fill + a cached epoch; epoch 2 reads the cache only
    if args.gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steady = timer.step_times[2:] or timer.step_times
    step = statistics.median(steady)
    audio_seconds = sum(min(e.duration or 0, 30) for e in dataset.examples[: args.batch_size * len(steady)])
    result = {
        "kind": kind,
        "step_s": step,
        "samples_per_s": args.batch_size / step,
        "audio_s_per_s": audio_seconds / sum(steady),
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if args.gpu
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if cache_dir:
        result["epoch_s"] = [fill_seconds + timer.epoch_times[0], timer.epoch_times[1]]
    if args.gpu:
        n_params = sum(p.numel() for p in model.parameters())
        tokens = args.batch_size * 400  # ~375 audio tokens + prompt + transcript per clip
        flops = 4 * n_params * tokens  # LoRA: forward 2N + input-gradient 2N per token (no weight grads)
        result["mfu"] = flops / step / (args.peak_tflops * 1e12)
        result["tokens_per_s"] = tokens / step
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps of each, to check the script runs")
    parser.add_argument("--gpu", action="store_true", help="real 3B architecture on one CUDA GPU, bf16")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--clips", type=int, default=54, help="training clips (sample data, repeated)")
    parser.add_argument("--batch-size", type=int, default=2, help="the reference's default is 2")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the card's dense bf16 peak (H100/H200 SXM)")
    parser.add_argument("--ablation", action="store_true", help="also run voxtral_exp with each lever off in turn")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one pipeline, print JSON
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.clips = 3, 6
    if args.only:
        print("RESULT " + json.dumps(run_one(args.only, args)))
        return
    results = {}
    kinds = ["reference", "voxtral_exp", "cache"]
    if args.ablation:
        kinds += list(ABLATIONS)
    for kind in kinds:
        cmd = [sys.executable, __file__, "--only", kind, "--steps", str(args.steps), "--clips", str(args.clips),
               "--batch-size", str(args.batch_size), "--peak-tflops", str(args.peak_tflops)]
        cmd += ["--gpu"] if args.gpu else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode != 0:
            sys.exit(f"{kind} failed:\n{proc.stderr[-4000:]}")
        results[kind] = json.loads(proc.stdout.split("RESULT ", 1)[1])
    ref, ours, cache = results["reference"], results["voxtral_exp"], results["cache"]
    where = "GPU, Voxtral-Mini-3B architecture, bf16" if args.gpu else "CPU, scaled-down model, fp32"
    print(f"training speed ({where}; batch {args.batch_size}, {args.steps} steps, median step after 2 warm-up)")
    print(f"{'':<22}{'reference':>12}{'voxtral_exp':>13}{'ours/ref':>10}")
    for key, label in (("samples_per_s", "samples/s"), ("audio_s_per_s", "audio-seconds/s"), ("step_s", "step time (s)"),
                       ("peak_mem_mb", "peak memory (MB)")):
        print(f"{label:<22}{ref[key]:>12.3f}{ours[key]:>13.3f}{ours[key] / ref[key]:>9.2f}x")
    if args.gpu:
        print(f"{'MFU':<22}{ref['mfu']:>12.1%}{ours['mfu']:>13.1%}")
        print(f"{'tokens/s':<22}{ref['tokens_per_s']:>12.0f}{ours['tokens_per_s']:>13.0f}")
    first, second = cache["epoch_s"]
    print(f"encoder cache: epoch 1 (fill + train) {first:.2f} s, epoch 2 {second:.2f} s, "
          f"speed-up {first / second:.2f}x")
    if args.ablation:
        print(f"ablation (voxtral_exp with one lever off; step time and peak memory vs all levers on):")
        for kind in ABLATIONS:
            r = results[kind]
            print(f"  {kind:<34} step {r['step_s']:.3f} s ({r['step_s'] / ours['step_s']:.2f}x), "
                  f"peak {r['peak_mem_mb']:.0f} MB ({r['peak_mem_mb'] / ours['peak_mem_mb']:.2f}x)")


if __name__ == "__main__":
    main()

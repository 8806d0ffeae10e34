"""Training throughput and memory: the reference pipeline versus voxtral_exp, same data, model
and hyperparameters, each run in its own process (so peak memory is its own).

    .venv/bin/python benchmarks/training_speed.py               # CPU, scaled-down model, LoRA (~2.5 min)
    .venv/bin/python benchmarks/training_speed.py --ablation    # + each lever changed in turn (~9 min)
    .venv/bin/python benchmarks/training_speed.py --smoke       # seconds; used by the tests
    python benchmarks/training_speed.py --gpu                   # one CUDA GPU: real Voxtral-Mini-3B
                                                                # architecture, random weights, bf16,
                                                                # LoRA and full fine-tuning (< 8 min)

Reference (shared/DESIGN.md): processor called per batch inside the collator (one loader
worker), the full 131072-wide logits for the loss, no cache, no grouping; LoRA r=8/alpha=32 on
q/k/v/o of *both* towers (its name match reaches the encoder). voxtral_exp: examples featurised
in a loader worker, LoRA on the language model only (the frozen encoder builds no graph),
logits only at label positions, batches grouped by chunk count. Full fine-tuning trains the
language model and projector in both (encoder frozen). Both: batch 2, lr 5e-5, HF Trainer, fp32
on CPU; bf16, SDPA and pinned memory on GPU.

Figures: median step time after 2 warm-up steps, samples/s and audio-seconds/s from it, peak
memory (max RSS on CPU, CUDA max allocated on GPU), and model FLOPs: counted by
torch.utils.flop_counter over one voxtral_exp step (matmuls, convolutions, attention) and used
as the work per sample for both pipelines, so MFU = that work x samples/s / the card's peak.

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

# Each run: voxtral_exp with these changes ("reference" is the other pipeline). Mixed-length data
# holds clips over 30 s, where chunk grouping matters.
RUNS = {
    "reference": {"pipeline": "reference"},
    "voxtral_exp": {},
    "cache": {"cache": True, "epochs": 2},
    "without: label-only logits": {"label_only": False},
    "without: LoRA kept to the LM": {"lora_in_encoder": True, "for_method": "lora"},
    "without: loader worker": {"workers": 0},
    "with: activation checkpointing": {"checkpointing": True},
    "with: torch.compile": {"compile": True},
    "without: SDPA (eager attention)": {"attention": "eager"},
    "without: bf16 (fp32)": {"bf16": False, "gpu_only": True},  # fp32 is the CPU default
    "without: pinned memory": {"pin_memory": False, "gpu_only": True},
    "with: frozen embeddings (full FT)": {"train_embeddings": False, "for_method": "full"},
    "chunk grouping": {"data": "mixed", "epochs": 1},
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # LoRA targets, as in the reference
LEVERS = [k for k in RUNS if k.startswith(("without", "with:"))]


def mixed_length_examples(examples, folder: Path):
    """Every third sample clip replaced by a 31-55 s clip (sample clips joined with silence)."""
    import numpy as np
    import soundfile as sf

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.example import Example

    rng = np.random.default_rng(0)
    out = []
    for i, example in enumerate(examples):
        if i % 3:
            out.append(example)
            continue
        seconds = rng.uniform(31, 55)
        parts, texts = [], []
        while sum(len(p) for p in parts) < seconds * 16000:
            other = examples[int(rng.integers(len(examples)))]
            parts += [load_audio(other.audio), np.zeros(8000, dtype=np.float32)]
            texts.append(other.text)
        path = folder / f"long_{i}.flac"
        sf.write(path, np.concatenate(parts)[: int(seconds * 16000)], 16000)
        out.append(Example(audio=str(path), text=" ".join(texts), language="en", origin=str(path)))
    return out


def build(run: dict, args):
    """(model, train dataset, collator, trainer class, trainer kwargs) for one run."""
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

    attention = run.get("attention", "sdpa")
    model_cfg = OmegaConf.create({"name": "bench", "random_init": True, "attn_implementation": attention,
                                  "text_config": {} if args.gpu else SCALED["text"],
                                  "audio_config": {} if args.gpu else SCALED["audio"]})
    with torch.device("cuda" if args.gpu else "cpu"):  # initialise the 3B weights on the GPU: fast
        model = build_model(model_cfg, torch.bfloat16 if bf16(run, args) else torch.float32, seed=0)
    processor = build_offline_processor()
    examples = read_manifest(ROOT / "data" / "sample" / "train.jsonl")[0]
    examples = (examples * 4)[: args.clips]
    if run.get("data") == "mixed":
        examples = mixed_length_examples(examples, Path(tempfile.mkdtemp(dir=args.scratch)))
    method = OmegaConf.create({"name": args.method, "r": 8, "alpha": 32, "dropout": 0.0, "train_projector": False,
                               "target_modules": TARGETS} if args.method == "lora"
                              else {"name": "full", "freeze_audio_tower": True, "train_projector": True,
                                    "train_embeddings": run.get("train_embeddings", True)})
    if args.method == "lora" and (run.get("pipeline") == "reference" or run.get("lora_in_encoder")):
        # the reference's plain name match: adapters in the encoder too
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS))
    else:
        model = apply_method(model, method)
    if run.get("pipeline") == "reference":
        return model, RowsDataset(examples), ReferenceCollator(processor), Trainer, {}
    dataset = SpeechDataset(examples, Featurizer(processor, "offline"))
    label_only = run.get("label_only", True)
    kwargs = {"compute_loss_func": label_only_loss if label_only else None, "chunk_counts": dataset.chunk_counts()}
    return model, dataset, TranscriptionCollator(11, label_only_logits=label_only), VoxtralTrainer, kwargs


def bf16(run: dict, args) -> bool:
    return args.gpu and run.get("bf16", True)


def step_cost_ratio(trainer, dataset, cache, batches: int = 6) -> float:
    """Median live step time / median cached step time (forward + backward, same model and
    batches, alternated in this process): what skipping the encoder can buy at most."""
    import torch

    def timed(cached: bool, start: int) -> float:
        dataset.cache = cache if cached else None
        batch = trainer.data_collator([dataset[start], dataset[start + 1]])
        batch = trainer._prepare_inputs(batch)
        begin = time.perf_counter()
        trainer.compute_loss(trainer.model, batch).backward()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - begin

    live, cached = [], []
    for i in range(batches + 1):  # the first pair warms up
        live.append(timed(False, 2 * i))
        cached.append(timed(True, 2 * i))
    trainer.model.zero_grad(set_to_none=True)
    dataset.cache = cache
    return statistics.median(live[1:]) / statistics.median(cached[1:])


def grouping_comparison(trainer, rounds: int) -> dict:
    """Grouped and ungrouped epochs over the same mixed-length clips, alternated in one process
    (A B B A ..., so the machine's drift hits both alike); the first round warms up."""
    ungrouped = type(trainer)(model=trainer.model, args=trainer.args, train_dataset=trainer.train_dataset,
                              data_collator=trainer.data_collator, compute_loss_func=trainer.compute_loss_func)
    trainers = {"grouped": trainer, "ungrouped": ungrouped}
    seconds = {key: [] for key in trainers}
    for round_ in range(rounds):
        for key in sorted(trainers, reverse=round_ % 2 == 1):
            start = time.perf_counter()
            trainers[key].train()
            seconds[key].append(time.perf_counter() - start)
    result = {}
    for key, each in trainers.items():
        masks = [batch["attention_mask"] for batch in each.get_train_dataloader()]  # padding: deterministic
        result[key] = {"samples_per_s": len(trainer.train_dataset) / statistics.median(seconds[key][1:] or seconds[key]),
                       "padding": 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)}
    return result


def run_one(name: str, args) -> dict:
    """Train one run for args.steps steps (or its epochs); time steps after warm-up."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import TrainerCallback, TrainingArguments

    run = RUNS[name]
    torch.manual_seed(0)
    model, dataset, collator, trainer_class, kwargs = build(run, args)

    class Timer(TrainerCallback):
        """Step and epoch times; the model FLOPs of the first (warm-up) step."""

        def __init__(self):
            self.step_times, self.epoch_times, self.flops = [], [], None
            self.counter = FlopCounterMode(display=False)

        def on_step_begin(self, *a, **k):
            if not self.step_times:
                self.counter.__enter__()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if args.gpu:
                torch.cuda.synchronize()
            self.step_times.append(time.perf_counter() - self.t)
            if self.flops is None:
                self.counter.__exit__(None, None, None)
                self.flops = self.counter.get_total_flops()

        def on_epoch_begin(self, *a, **k):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, *a, **k):
            self.epoch_times.append(time.perf_counter() - self.epoch_start)

    timer = Timer()
    epochs = run.get("epochs")
    workers = run.get("workers", 1)
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(dir=args.scratch), per_device_train_batch_size=args.batch_size, learning_rate=5e-5,
        max_steps=-1 if epochs else args.steps, num_train_epochs=epochs or 1, save_strategy="no",
        eval_strategy="no", report_to="none", logging_steps=10_000, use_cpu=not args.gpu, bf16=bf16(run, args),
        dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0,
        dataloader_pin_memory=args.gpu and run.get("pin_memory", True), remove_unused_columns=False, label_names=["labels"], disable_tqdm=True,
        activation_checkpointing=run.get("checkpointing", False), torch_compile=run.get("compile", False),
    )
    trainer = trainer_class(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                            callbacks=[timer], **kwargs)
    fill_seconds = 0.0
    if run.get("cache"):
        from voxtral_exp.encoder_cache import EncoderCache

        start = time.perf_counter()
        cache = EncoderCache(tempfile.mkdtemp(dir=args.scratch), model)
        cache.fill(model, dataset, batch_size=args.batch_size, num_workers=1)
        fill_seconds = time.perf_counter() - start
        dataset.cache = cache  # epoch 1 = fill + a cached epoch; epoch 2 reads the cache only
    if args.gpu:
        torch.cuda.reset_peak_memory_stats()
    if name == "chunk grouping":
        return grouping_comparison(trainer, rounds=2 if args.smoke else 4)
    trainer.train()
    steady = timer.step_times[2:] or timer.step_times
    step = statistics.median(steady)
    audio_seconds = sum(min(e.duration or 0, 30) for e in dataset.examples[: args.batch_size * len(steady)])
    result = {
        "name": name,
        "step_s": step,
        "first_steps_s": sum(timer.step_times[:2]),
        "samples_per_s": args.batch_size / step,
        "audio_s_per_s": audio_seconds / sum(steady),
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if args.gpu
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops_per_sample": timer.flops / args.batch_size,
    }
    if run.get("cache"):
        result["epoch_s"] = [fill_seconds + timer.epoch_times[0], timer.epoch_times[1]]
        result["live_over_cached_step"] = step_cost_ratio(trainer, dataset, cache, batches=2 if args.smoke else 6)
    return result


def run_separately(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--only", name, "--method", args.method, "--steps", str(args.steps),
           "--clips", str(args.clips), "--batch-size", str(args.batch_size)]
    cmd += (["--gpu"] if args.gpu else []) + (["--smoke"] if args.smoke else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        sys.exit(f"{name} ({args.method}) failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def report(results: dict, args) -> None:
    ref, ours = results["reference"], results["voxtral_exp"]
    where = "GPU, Voxtral-Mini-3B architecture, bf16" if args.gpu else "CPU, scaled-down model, fp32"
    print(f"\n{args.method} ({where}; batch {args.batch_size}, {args.steps} steps, median step after 2 warm-up)")
    print(f"{'':<24}{'reference':>12}{'voxtral_exp':>13}{'ours/ref':>10}")
    rows = [("samples_per_s", "samples/s"), ("audio_s_per_s", "audio-seconds/s"), ("step_s", "step time (s)"),
            ("peak_mem_mb", "peak memory (MB)")]
    for key, label in rows:
        print(f"{label:<24}{ref[key]:>12.3f}{ours[key]:>13.3f}{ours[key] / ref[key]:>9.2f}x")
    work = ours["flops_per_sample"]  # the model FLOPs one sample needs; the same for both pipelines
    tflops = {k: work * r["samples_per_s"] / 1e12 for k, r in (("ref", ref), ("ours", ours))}
    print(f"{'model TFLOP/s':<24}{tflops['ref']:>12.3f}{tflops['ours']:>13.3f}{tflops['ours'] / tflops['ref']:>9.2f}x")
    print(f"{'executed GFLOP/sample':<24}{ref['flops_per_sample'] / 1e9:>12.1f}{work / 1e9:>13.1f}")
    if args.gpu:
        print(f"{'MFU':<24}{tflops['ref'] / args.peak_tflops:>12.1%}{tflops['ours'] / args.peak_tflops:>13.1%}"
              f"   (against {args.peak_tflops:g} TFLOP/s dense bf16)")
        print(f"{'tokens/s (~400/sample)':<24}{ref['samples_per_s'] * 400:>12.0f}{ours['samples_per_s'] * 400:>13.0f}")
    if "cache" in results:
        cache = results["cache"]
        first, second = cache["epoch_s"]
        print(f"encoder cache: epoch 1 (fill + train) {first:.2f} s, epoch 2 {second:.2f} s, speed-up "
              f"{first / second:.2f}x; a live step costs {cache['live_over_cached_step']:.2f}x a cached one "
              f"(same process, alternated): the most that skipping the encoder can buy")
    if "chunk grouping" in results:
        grouped, mixed = results["chunk grouping"]["grouped"], results["chunk grouping"]["ungrouped"]
        print(f"chunk grouping (1 clip in 3 over 30 s; whole epochs, alternated in one process): grouped "
              f"{grouped['samples_per_s']:.3f} samples/s, ungrouped {mixed['samples_per_s']:.3f} "
              f"({grouped['samples_per_s'] / mixed['samples_per_s']:.2f}x); padding {grouped['padding']:.1%} "
              f"against {mixed['padding']:.1%} of the language model's positions")
    levers = [k for k in LEVERS if k in results]
    if levers:
        print("levers (voxtral_exp with one change; step time and peak memory vs voxtral_exp as shipped):")
        for name in levers:
            r = results[name]
            print(f"  {name:<34} step {r['step_s']:.3f} s ({r['step_s'] / ours['step_s']:.2f}x), "
                  f"first 2 steps {r['first_steps_s']:.1f} s, "
                  f"peak {r['peak_mem_mb']:.0f} MB ({r['peak_mem_mb'] / ours['peak_mem_mb']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps of each, to check the script runs")
    parser.add_argument("--gpu", action="store_true", help="real 3B architecture on one CUDA GPU, bf16")
    parser.add_argument("--methods", default=None, help="comma-separated: lora,full (default: lora; --gpu: both)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--clips", type=int, default=54, help="training clips (sample data, repeated)")
    parser.add_argument("--batch-size", type=int, default=2, help="the reference's default is 2")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the card's dense bf16 peak (H100/H200 SXM)")
    parser.add_argument("--ablation", action="store_true", help="also run each lever changed in turn, and grouping")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one, print JSON
    parser.add_argument("--method", default="lora", help=argparse.SUPPRESS)  # internal, with --only
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.clips = 3, 6
    if args.only:
        with tempfile.TemporaryDirectory(prefix="voxtral_bench_") as scratch:  # cache, audio: removed after
            args.scratch = scratch
            print("RESULT " + json.dumps(run_one(args.only, args)))
        return
    for method in (args.methods or ("lora,full" if args.gpu else "lora")).split(","):
        args.method = method
        names = ["reference", "voxtral_exp"] + (["cache"] if method == "lora" else [])
        if args.ablation:
            names += [k for k in LEVERS if RUNS[k].get("for_method", method) == method
                      and (args.gpu or not RUNS[k].get("gpu_only"))]
            names += ["chunk grouping"]
        report({name: run_separately(name, args) for name in names}, args)


if __name__ == "__main__":
    main()

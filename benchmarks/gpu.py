"""The GPU benchmark: one call of at most 8 minutes on a machine with one H100 or H200 and no
network. Voxtral-Mini-3B's architecture with random weights (nothing to download), bf16.

Prepare here (network), then run there (no network):

    .venv/bin/python benchmarks/gpu_wheels.py          # the packages the GPU image lacks -> .whl/
    # on the GPU machine, from the repository root:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT

(a) train.py end to end: `model=voxtral-mini-3b model.random_init=true method=lora hardware=gpu`
    on the bundled sample for 20 steps; final/ saved; `python -m voxtral_exp.transcribe` reloads
    it and transcribes 2 clips.
(b) throughput and peak memory on 10 s clips (--seconds) of pipelines training the same weights
    (LoRA r=8 on q/k/v/o of the language model; benchmarks/pipelines.py): voxtral_exp as shipped
    (375 audio tokens per chunk), the upstream pipeline's compute path (reference),
    axolotl-style (fused linear cross-entropy: Liger's, or cut-cross-entropy), and voxtral_exp's
    method changes model.audio_tokens=clip (136 tokens for 10 s) and + model.encoder_window=clip.
    One model in one process; the sides alternate A B C ... C B A, each round --warmup steps (2) then
    --steps timed steps; peak memory is CUDA's peak during the side's rounds. The clip sides also
    run at --clip-batch-size (shorter sequences: a larger batch fills the card).
(c) MFU: each side's own FLOPs per sample on these shapes (torch's flop counter, meta device) x
    samples/s over the card's dense bf16 peak (989 TFLOP/s, H100/H200 SXM).
Goals: voxtral_exp >= 1.3x the best baseline's samples/s at no more memory; >= 35% MFU for LoRA at
batch >= 8 with clip tokens.

`--cpu-toy` runs the same logic on a tiny model on the CPU (`make test-all` does; a minute): every
branch but the CUDA kernels. Run it before spending device time on a change to this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEAK_TFLOPS = 989.0  # dense bf16, H100 SXM and H200 (NVIDIA's data sheets, without sparsity)
TOY = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "vocab_size": 131072,
    },
    "audio_config": {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
}


def end_to_end(args, out: Path) -> dict:
    """(a): train.py for 20 LoRA steps, then the transcribe CLI on the saved final/."""
    run_dir = out / "e2e-run"
    model = (
        ["model=voxtral-mini-3b", "model.random_init=true", "hardware=gpu"]
        if not args.cpu_toy
        else ["model=tiny", "hardware=cpu"]
    )
    steps = 20 if not args.cpu_toy else 2
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *model,
        "method=lora",
        f"trainer.max_steps={steps}",
        f"trainer.eval_steps={steps}",
        f"trainer.save_steps={steps}",
        "trainer.per_device_train_batch_size=4",
        "trainer.dataloader_num_workers=2",
        "tracking.enabled=false",
        "evaluation.max_new_tokens=8",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    train = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    train_s = time.perf_counter() - start
    if train.returncode != 0:
        return {"ok": False, "error": (train.stdout + train.stderr)[-3000:]}
    clips = [str(ROOT / "data" / "sample" / "audio" / n) for n in ("en_00.flac", "fr_01.flac")]
    start = time.perf_counter()
    transcribe = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.transcribe", str(run_dir), *clips, "--max-new-tokens", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    results = json.loads((run_dir / "eval_results.json").read_text())
    return {
        "ok": transcribe.returncode == 0,
        "steps": steps,
        "train_s": train_s,
        "transcribe_s": time.perf_counter() - start,
        "eval_loss": results.get("eval_loss"),
        "eval_wer": results.get("eval_wer"),
        "transcripts": transcribe.stdout.strip().splitlines(),
        "error": transcribe.stderr[-2000:],
    }


def throughput(args, scratch: Path) -> dict:
    """(b) and (c): the three pipelines on one model, alternated in this process (clips and
    trainer folders in ``scratch``)."""
    import torch
    from omegaconf import OmegaConf
    from transformers import TrainerCallback, TrainingArguments

    from benchmarks.pipelines import (
        apply_training_method,
        clips_of,
        fused_linear_cross_entropy,
        make_trainer,
    )
    from voxtral_exp.data.featurize import Featurizer
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.model.audio_path import attach
    from voxtral_exp.model.modeling import build_model
    from voxtral_exp.model.processor import build_offline_processor

    gpu = not args.cpu_toy
    device = torch.device("cuda" if gpu else "cpu")
    torch.manual_seed(0)
    model_cfg = OmegaConf.create(
        {
            "name": "bench",
            "random_init": True,
            "audio_tokens": "chunk",
            "encoder_window": "chunk",
            "attn_implementation": "sdpa",
            **({"text_config": {}, "audio_config": {}} if gpu else TOY),
        }
    )
    with device:  # initialise the 3B weights on the GPU: seconds, not minutes
        model = build_model(model_cfg, torch.bfloat16 if gpu else torch.float32, seed=0)
    model = apply_training_method(model, "lora")  # adapters in fp32 (peft), base weights bf16 and frozen
    processor = build_offline_processor()
    samples = max(args.batch_size, args.clip_batch_size) * (args.steps + args.warmup) * 2
    examples = clips_of(
        (read_manifest(ROOT / "data" / "sample" / "train.jsonl")[0] * 16)[:samples], args.seconds, scratch
    )
    featurizer = Featurizer(processor, "offline")
    text_tokens = round(statistics.mean(len(featurizer.target(e.text)) for e in examples))

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps = []

        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if gpu:
                torch.cuda.synchronize()
            self.steps.append(time.perf_counter() - self.t)

    trainers, timers = {}, {}
    table = sides(args)
    for name, (pipeline, audio_tokens, _, batch) in table.items():
        timers[name] = Timer()
        training_args = TrainingArguments(
            output_dir=f"{scratch}/{name}",
            per_device_train_batch_size=batch,
            learning_rate=5e-5,
            max_steps=args.steps + args.warmup,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=10_000,
            use_cpu=not gpu,
            bf16=gpu,
            dataloader_num_workers=1 if pipeline == "reference" else 4,
            dataloader_pin_memory=gpu,
            remove_unused_columns=False,
            label_names=["labels"],
            disable_tqdm=True,
            seed=0,
        )
        trainers[name] = make_trainer(
            pipeline, model, examples, processor, training_args, [timers[name]], audio_tokens=audio_tokens
        )
    times = {name: [] for name in trainers}
    peaks = {name: 0.0 for name in trainers}
    order = list(trainers)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            if gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            timers[name].steps = []
            attach(model, encoder_window=table[name][2])
            trainers[name].train()
            times[name] += timers[name].steps[args.warmup :]  # warm-up steps per round
            if gpu:
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated() / 2**30)
    flops = {name: side_flops(args, side, text_tokens) for name, side in table.items()} if gpu else {}
    results = {}
    for name, (_, _, _, batch) in table.items():
        step = statistics.median(times[name])
        rate = batch / step
        results[name] = {
            "step_s": step,
            "step_s_min": min(times[name]),
            "step_s_max": max(times[name]),
            "samples_per_s": rate,
            "peak_gib": peaks[name],
        }
        if flops:
            results[name].update(
                executed_tflop_per_sample=flops[name] / 1e12, mfu=flops[name] * rate / (args.peak_tflops * 1e12)
            )
    results["fused_loss"] = fused_linear_cross_entropy()[0]
    results["text_tokens"] = text_tokens
    return results


def sides(args) -> dict[str, tuple[str, str, bool, int]]:
    """name: (pipeline, model.audio_tokens, encoder window, batch size)."""
    b, clip_b = args.batch_size, args.clip_batch_size
    return {
        "voxtral_exp": ("voxtral_exp", "chunk", False, b),
        "reference": ("reference", "chunk", False, b),
        "axolotl-style": ("axolotl-style", "chunk", False, b),
        "clip tokens": ("voxtral_exp", "clip", False, b),
        "clip tokens + window": ("voxtral_exp", "clip", True, b),
        f"clip tokens, batch {clip_b}": ("voxtral_exp", "clip", False, clip_b),
    }


def side_flops(args, side: tuple, text_tokens: int) -> float:
    """One sample's FLOPs on the 3B for a side: its audio tokens, its encoder frames."""
    from benchmarks.pipelines import flops_3b
    from voxtral_exp.model.tokens import audio_tokens

    pipeline, tokens, window, _ = side
    n = audio_tokens(round(args.seconds * 16000), tokens)
    return flops_3b(pipeline, "lora", text_tokens=text_tokens, audio_tokens=n, encoder_frames=8 * n if window else 3000)


def report(e2e: dict | None, speed: dict | None, args) -> None:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (toy model: logic check only)"
    print(f"device: {device}; batch {args.batch_size}; {args.rounds} rounds x {args.steps} timed steps per pipeline")
    if e2e is not None:
        if e2e["ok"]:
            print(
                f"(a) train.py end to end: {e2e['train_s']:.0f} s for {e2e['steps']} LoRA steps + save + eval (eval loss "
                f"{e2e['eval_loss']:.3f}); transcribe reloaded final/ in {e2e['transcribe_s']:.0f} s:"
            )
            for line in e2e["transcripts"]:
                print(f"    {line}")
        else:
            print(f"(a) train.py end to end FAILED:\n{e2e['error']}")
    if speed is None:
        return
    print(
        f"(b) LoRA r=8 on q/k/v/o of the language model in every pipeline, {args.seconds:g} s clips; "
        f"axolotl-style loss: {speed['fused_loss']}"
    )
    print(
        f"    {'side':<26}{'samples/s':>11}{'step s (min-max)':>24}{'peak GiB':>10}"
        + (f"{'TFLOP/sample':>14}{'MFU':>8}" if "mfu" in speed["voxtral_exp"] else "")
    )
    for name in sides(args):
        r = speed[name]
        line = (
            f"    {name:<26}{r['samples_per_s']:>11.2f}{r['step_s']:>10.3f} ({r['step_s_min']:.3f}-{r['step_s_max']:.3f})"
            f"{r['peak_gib']:>10.1f}"
        )
        if "mfu" in r:
            line += f"{r['executed_tflop_per_sample']:>14.2f}{r['mfu']:>8.1%}"
        print(line)
    ours = speed["voxtral_exp"]
    best = max(("reference", "axolotl-style"), key=lambda n: speed[n]["samples_per_s"])
    ratio = ours["samples_per_s"] / speed[best]["samples_per_s"]
    memory_ok = ours["peak_gib"] <= speed[best]["peak_gib"]
    print(
        f"goal >= 1.3x the best baseline ({best}) at no more memory: {ratio:.2f}x, "
        f"{ours['peak_gib']:.1f} vs {speed[best]['peak_gib']:.1f} GiB: "
        f"{'met' if ratio >= 1.3 and memory_ok else 'NOT met'}"
    )
    clip = speed["clip tokens"]
    print(
        f"clip tokens (a method change: WER in RESULTS.md): {clip['samples_per_s'] / ours['samples_per_s']:.2f}x "
        f"voxtral_exp's samples/s, {clip['samples_per_s'] / speed[best]['samples_per_s']:.2f}x the best baseline's"
    )
    if "mfu" in ours:
        best_clip = max((n for n in sides(args) if n.startswith("clip")), key=lambda n: speed[n]["mfu"])
        print(
            f"goal >= 35% MFU for LoRA with clip tokens at batch >= 8: {speed[best_clip]['mfu']:.1%} ({best_clip}): "
            f"{'met' if speed[best_clip]['mfu'] >= 0.35 and args.batch_size >= 8 else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "voxtral_gpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clip-batch-size", type=int, default=24, help="a larger batch for clip tokens")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length for (b) and (c)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per pipeline per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side per round")
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS)
    parser.add_argument("--skip-e2e", action="store_true", help="only (b) and (c)")
    parser.add_argument("--cpu-toy", action="store_true", help="the same logic on a tiny model on the CPU")
    args = parser.parse_args()
    if args.cpu_toy:
        args.batch_size, args.clip_batch_size, args.steps, args.rounds, args.warmup = 2, 3, 1, 2, 1
    args.out.mkdir(parents=True, exist_ok=True)
    e2e = None if args.skip_e2e else end_to_end(args, args.out)
    with tempfile.TemporaryDirectory(prefix="voxtral_gpu_") as scratch:  # the clips, ~5 MB a run
        speed = throughput(args, Path(scratch))
    (args.out / "gpu_results.json").write_text(json.dumps({"e2e": e2e, "throughput": speed}, indent=2, default=str))
    report(e2e, speed, args)
    print(f"results: {args.out / 'gpu_results.json'}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

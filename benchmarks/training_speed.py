"""Training throughput and memory at equal work: pipelines that train the same weights, sides
alternated, each figure beside its projection to Voxtral-Mini-3B's real shapes.

    .venv/bin/python benchmarks/training_speed.py                 # CPU, ~20 min on 2 cores
    .venv/bin/python benchmarks/training_speed.py --ablation      # + each lever of voxtral_exp in turn
    .venv/bin/python benchmarks/training_speed.py --smoke         # seconds; used by the tests
    .venv/bin/python benchmarks/training_speed.py --only lora     # sections: lora, full, methods, cache,
                                                                  # clip, projection, quickstart

Sections (benchmarks/pipelines.py defines the pipelines):
- equal work, LoRA: r=8 on q/k/v/o of the language model on every side: voxtral_exp, the
  upstream pipeline's compute path (reference), axolotl-style (fused cross-entropy);
- equal work, full fine-tuning of the language model + projector: the same three;
- method changes, each against voxtral_exp as shipped: LoRA adapters in the encoder too (the
  reference's name match) and frozen embeddings (full fine-tuning). These change what is
  trained; benchmarks/learning.py measures what they do to WER (RESULTS.md);
- the encoder cache end to end: N epochs without it against filling it plus N epochs with it,
  next to the per-step ceiling (a live step's cost over a cached one's, alternated in one process);
- clip: LoRA on clips of 2 s and 10 s with Voxtral's 375 audio tokens per chunk, with
  `model.audio_tokens=clip`, and with `model.encoder_window=clip` too (method changes: their WER
  is benchmarks/learning.py's), each beside the 3B's work ratio;
- projection: the 3B's FLOPs per sample, the reference's over voxtral_exp's, for 5-30 s clips,
  LoRA and full, exact and clip tokens, with and without the encoder cache over 3 epochs (no
  timing: torch's flop counter on the meta device);
- quickstart: `make run`'s config for the same steps with chunk and clip tokens (warm cache).

Protocol: every side runs in its own process (so its peak memory is its own), sides alternate
A B B A A B ... for --pairs pairs (3 by default), each process warms up 2 steps and times the
next --steps; figures are the median over processes with the min-max spread. Ratios are ratios
of medians. Work per sample on the 3B is counted by torch's flop counter on the meta device.

CPU model ("scaled"): Voxtral-Mini-3B with widths / 8 and depths / 10 (text 384 wide, 3 layers;
encoder 160 wide, 3 layers) but the real 131072-token vocabulary, which the tokenizer fixes: the
output layer is 10.8x the rest of the decoder here and 0.125x on the 3B, so anything that
saves output-layer work is flattered on CPU. The 3B projection says what carries over.
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
    "text": {
        "hidden_size": 384,
        "intermediate_size": 1024,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 96,
        "vocab_size": 131072,
    },
    "audio": {"hidden_size": 160, "intermediate_size": 640, "num_hidden_layers": 3, "num_attention_heads": 2},
}
SHIPPED = {"pipeline": "voxtral_exp"}
SECTIONS = {  # name: (title, {side: settings})
    "lora": (
        "equal work: LoRA r=8 on q/k/v/o of the language model",
        {
            "voxtral_exp": {"pipeline": "voxtral_exp", "method": "lora"},
            "reference": {"pipeline": "reference", "method": "lora"},
            "axolotl-style": {"pipeline": "axolotl-style", "method": "lora"},
        },
    ),
    "full": (
        "equal work: full fine-tuning of the language model + projector",
        {
            "voxtral_exp": {"pipeline": "voxtral_exp", "method": "full"},
            "reference": {"pipeline": "reference", "method": "full"},
            "axolotl-style": {"pipeline": "axolotl-style", "method": "full"},
        },
    ),
    "methods": (
        "method changes (they change what is trained; WER effects in RESULTS.md)",
        {
            "voxtral_exp (LoRA, LM only)": {"pipeline": "voxtral_exp", "method": "lora"},
            "+ LoRA adapters in the encoder": {"pipeline": "voxtral_exp", "method": "lora", "encoder_adapters": True},
            "voxtral_exp (full)": {"pipeline": "voxtral_exp", "method": "full"},
            "+ frozen embeddings (full)": {"pipeline": "voxtral_exp", "method": "full", "train_embeddings": False},
        },
    ),
    "cache": (
        "encoder cache, end to end (LoRA; fill included)",
        {
            "without cache": {"pipeline": "voxtral_exp", "method": "lora", "epochs": 3},
            "with cache": {"pipeline": "voxtral_exp", "method": "lora", "epochs": 3, "cache": True},
        },
    ),
}
CLIP_SIDES = {  # model.audio_tokens / model.encoder_window, at a fixed clip length
    "chunk (375 tokens per chunk)": {"audio_tokens": "chunk", "encoder_window": "chunk"},
    "clip tokens": {"audio_tokens": "clip", "encoder_window": "chunk"},
    "clip tokens + encoder window": {"audio_tokens": "clip", "encoder_window": "clip"},
}
CLIP_SECONDS = (2.0, 10.0)  # CPU comparison: about the sample data's clips, and LibriSpeech-like
PROJECTED_SECONDS = (5.0, 10.0, 12.7, 15.0, 20.0, 30.0)  # 3B projection (LibriSpeech averages 12.7 s)
LEVERS = {  # --ablation: voxtral_exp (LoRA) with one change, against voxtral_exp as shipped
    "without label-only logits": {"label_only": False},
    "without SDPA (eager attention)": {"attention": "eager"},
    "without the loader worker": {"workers": 0},
    "with activation checkpointing": {"checkpointing": True},
    "with torch.compile": {"compile": True},
}
METHOD_PAIRS = {
    "+ LoRA adapters in the encoder": "voxtral_exp (LoRA, LM only)",
    "+ frozen embeddings (full)": "voxtral_exp (full)",
}


def run_side(spec: dict, args) -> dict:
    """Train one side in this process; time the steps after 2 warm-up steps."""
    import torch
    from omegaconf import OmegaConf
    from transformers import TrainerCallback, TrainingArguments

    from benchmarks.pipelines import apply_training_method, make_trainer
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.model.modeling import build_model
    from voxtral_exp.model.processor import build_offline_processor

    torch.manual_seed(0)
    layers = spec.get("real_layers")  # the 3B's real widths and vocabulary, cut to this many layers per tower
    model_cfg = OmegaConf.create(
        {
            "name": "bench",
            "random_init": True,
            "attn_implementation": spec.get("attention", "sdpa"),
            "text_config": {"num_hidden_layers": layers} if layers else SCALED["text"],
            "audio_config": {"num_hidden_layers": layers} if layers else SCALED["audio"],
            "encoder_positions": "sinusoids",
            "audio_tokens": spec.get("audio_tokens", "chunk"),
            "encoder_window": spec.get("encoder_window", "chunk"),
        }
    )
    model = build_model(model_cfg, torch.float32, seed=0)
    model = apply_training_method(
        model, spec.get("method", "lora"), spec.get("encoder_adapters", False), spec.get("train_embeddings", True)
    )
    examples = (read_manifest(ROOT / "data" / "sample" / "train.jsonl")[0] * 8)[: args.clips]
    if "seconds" in spec:  # every clip exactly this long: sample speech strung together
        from benchmarks.pipelines import clips_of

        examples = clips_of(examples, spec["seconds"], Path(args.scratch))

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps, self.epochs = [], []

        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.steps.append(time.perf_counter() - self.t)

        def on_epoch_begin(self, *a, **k):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, *a, **k):
            self.epochs.append(time.perf_counter() - self.epoch_start)

    timer, workers, epochs = Timer(), spec.get("workers", 1), spec.get("epochs")
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(dir=args.scratch),
        per_device_train_batch_size=args.batch_size,
        learning_rate=5e-5,
        max_steps=-1 if epochs else args.steps + 2,
        num_train_epochs=epochs or 1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=10_000,
        use_cpu=True,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=True,
        activation_checkpointing=spec.get("checkpointing", False),
        torch_compile=spec.get("compile", False),
        seed=0,
    )
    trainer = make_trainer(
        spec["pipeline"],
        model,
        examples,
        build_offline_processor(model.config.audio_config.num_mel_bins),
        training_args,
        [timer],
        label_only=spec.get("label_only", True),
        audio_tokens=spec.get("audio_tokens", "chunk"),
    )
    start = time.perf_counter()
    if spec.get("cache"):
        from voxtral_exp.training.encoder_cache import EncoderCache

        cache = EncoderCache(tempfile.mkdtemp(dir=args.scratch), model)
        cache.fill(model, trainer.train_dataset, batch_size=args.batch_size, num_workers=workers)
        trainer.train_dataset.cache = cache
    trainer.train()
    total = time.perf_counter() - start
    steady = timer.steps[2:] or timer.steps
    result = {
        "step_s": statistics.median(steady),
        "samples_per_s": args.batch_size / statistics.median(steady),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    if epochs:
        result["total_s"] = total  # fill (if any) and every epoch
        result["samples_per_s"] = len(examples) * epochs / total
    if spec.get("cache"):
        result["live_over_cached_step"] = live_over_cached_step(trainer, cache, batches=2 if args.smoke else 6)
    return result


def live_over_cached_step(trainer, cache, batches: int) -> float:
    """Median live step time / median cached step time (forward + backward, same batches,
    alternated in this process): the most that skipping the encoder can buy per step."""
    dataset, live, cached = trainer.train_dataset, [], []
    for i in range(batches + 1):  # the first pair warms up
        for use_cache, times in ((False, live), (True, cached)):
            dataset.cache = cache if use_cache else None
            batch = trainer._prepare_inputs(trainer.data_collator([dataset[2 * i], dataset[2 * i + 1]]))
            start = time.perf_counter()
            trainer.compute_loss(trainer.model, batch).backward()
            times.append(time.perf_counter() - start)
    trainer.model.zero_grad(set_to_none=True)
    return statistics.median(live[1:]) / statistics.median(cached[1:])


def in_subprocess(spec: dict, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--side",
        json.dumps(spec),
        "--steps",
        str(args.steps),
        "--clips",
        str(args.clips),
        "--batch-size",
        str(args.batch_size),
    ] + (["--smoke"] if args.smoke else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        sys.exit(f"{spec} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def alternate(sides: dict[str, dict], args) -> dict[str, list[dict]]:
    """Run every side --pairs times, the order reversed every round (A B C, C B A, A B C, ...)."""
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(args.pairs):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name].append(in_subprocess(sides[name], args))
    return runs


def median_spread(values: list[float], fmt: str = "{:.3f}") -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def report(title: str, runs: dict[str, list[dict]], baseline: str, projection: dict[str, float] | None) -> None:
    """One table: per side the median (min-max) over processes, and ratios of medians to ``baseline``."""
    print(f"\n{title} (ratios against: {baseline})")
    print(
        f"  {'side':<32}{'samples/s (min-max)':>24}{'ratio':>8}{'peak RSS MB (min-max)':>24}{'ratio':>7}"
        + (f"{'3B TFLOP/sample':>17}{'3B ratio':>10}" if projection else "")
    )
    base = statistics.median(r["samples_per_s"] for r in runs[baseline])
    base_mem = statistics.median(r["peak_rss_mb"] for r in runs[baseline])
    for name, each in runs.items():
        rate = statistics.median(r["samples_per_s"] for r in each)
        mem = statistics.median(r["peak_rss_mb"] for r in each)
        line = (
            f"  {name:<32}{median_spread([r['samples_per_s'] for r in each]):>24}{rate / base:>7.2f}x"
            f"{median_spread([r['peak_rss_mb'] for r in each], '{:.0f}'):>24}{mem / base_mem:>6.2f}x"
        )
        if projection:  # the throughput ratio the 3B would see at equal FLOP/s: the work ratio
            line += f"{projection[name] / 1e12:>17.2f}{projection[baseline] / projection[name]:>9.2f}x"
        print(line)
    trainable = ", ".join(f"{name} {each[0]['trainable']:,}" for name, each in runs.items())
    print(f"  trainable weights: {trainable}")


def projections(sides: dict[str, dict]) -> dict[str, float]:
    from benchmarks.pipelines import flops_3b

    return {
        name: flops_3b(
            s["pipeline"], s.get("method", "lora"), s.get("encoder_adapters", False), s.get("train_embeddings", True)
        )
        for name, s in sides.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps of each, to check the script runs")
    parser.add_argument(
        "--only", help="comma-separated sections: lora, full, methods, cache, clip, projection, quickstart, real"
    )
    parser.add_argument("--ablation", action="store_true", help="also each lever of voxtral_exp, alternated with it")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of alternated sides")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per process (after 2 warm-up)")
    parser.add_argument("--clips", type=int, default=54, help="training clips (sample data, repeated)")
    parser.add_argument("--batch-size", type=int, default=2, help="the reference's default is 2")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.clips, args.pairs = 2, 8, 1
    if args.side:
        with tempfile.TemporaryDirectory(prefix="voxtral_bench_") as scratch:  # cache, checkpoints: removed after
            args.scratch = scratch
            print("RESULT " + json.dumps(run_side(json.loads(args.side), args)))
        return
    print(
        f"CPU ({os.cpu_count()} cores), scaled-down Voxtral-Mini-3B, fp32, batch {args.batch_size}; "
        f"{args.pairs} rounds of alternated processes, {args.steps} timed steps each after 2 warm-up"
    )
    sections = args.only.split(",") if args.only else [*SECTIONS, "clip", "projection", "quickstart", "real"]
    own = {
        "clip": clip_section,
        "projection": projection_section,
        "quickstart": quickstart_section,
        "real": real_section,
    }
    for key in sections:
        if key in own:
            own[key](args)
            continue
        title, sides = SECTIONS[key]
        if key == "methods":
            runs = alternate(sides, args)
            projection = projections(sides)
            for changed, base in METHOD_PAIRS.items():
                report(f"{title}: {changed}", {base: runs[base], changed: runs[changed]}, base, projection)
        elif key == "cache":
            runs = alternate(sides, args)
            without, with_cache = runs["without cache"], runs["with cache"]
            print(f"\n{title}")
            print(
                f"  3 epochs without the cache: {median_spread([r['total_s'] for r in without], '{:.1f}')} s; "
                f"filling it + 3 epochs with it: {median_spread([r['total_s'] for r in with_cache], '{:.1f}')} s: "
                f"{statistics.median(r['total_s'] for r in without) / statistics.median(r['total_s'] for r in with_cache):.2f}x"
            )
            print(
                f"  per-step ceiling: a live step costs {median_spread([r['live_over_cached_step'] for r in with_cache], '{:.2f}')}x "
                f"a cached one (same process, alternated)"
            )
            from benchmarks.pipelines import flops_3b

            print(
                f"  3B: the frozen encoder is {encoder_share_3b(flops_3b):.0%} of a LoRA step's FLOPs, so a cached "
                f"step can be at most {1 / (1 - encoder_share_3b(flops_3b)):.2f}x faster per step"
            )
        else:
            report(title, alternate(sides, args), "reference", projections(sides))
    if args.ablation:
        for lever, change in LEVERS.items():
            sides = {"voxtral_exp": {**SHIPPED, "method": "lora"}, lever: {**SHIPPED, "method": "lora", **change}}
            report(f"lever: {lever}", alternate(sides, args), "voxtral_exp", None)


def clip_tokens(seconds: float) -> int:
    from voxtral_exp.model.tokens import audio_tokens

    return audio_tokens(round(seconds * 16000), "clip")


def clip_work_3b(method: str, mode: dict, seconds: float) -> tuple[float, float]:
    """(encoder, rest) FLOPs per sample on the 3B for a clip of ``seconds`` under ``mode``."""
    from benchmarks.pipelines import work_3b

    n = clip_tokens(seconds) if mode["audio_tokens"] == "clip" else 375
    frames = 8 * n if mode["encoder_window"] == "clip" else 3000
    return work_3b("voxtral_exp", method, audio_tokens=n, encoder_frames=frames)


def clip_section(args) -> None:
    """CPU: the same LoRA training on clips of one length, with 375 audio tokens per chunk, with the
    clip's own, and with the encoder on the clip's frames too; beside each, the 3B's work ratio."""
    for seconds in CLIP_SECONDS[:1] if args.smoke else CLIP_SECONDS:
        sides = {
            name: {"pipeline": "voxtral_exp", "method": "lora", "seconds": seconds, **m}
            for name, m in CLIP_SIDES.items()
        }
        projection = {name: sum(clip_work_3b("lora", m, seconds)) for name, m in CLIP_SIDES.items()}
        title = f"audio tokens, LoRA, {seconds:g} s clips ({clip_tokens(seconds)} clip tokens against 375; method changes, WER in RESULTS.md)"
        report(title, alternate(sides, args), next(iter(CLIP_SIDES)), projection)


REAL_LAYERS = 2  # --only real: Voxtral-Mini-3B's real widths, 2 layers per tower (~1.1 B weights, 4.4 GB fp32)


def real_section(args) -> None:
    """Voxtral-Mini-3B's real shapes on CPU (`model=voxtral-mini-3b model.random_init=true`, cut to
    REAL_LAYERS layers per tower): LoRA steps on 10 s clips under each audio rule, alternated, beside
    the FLOP ratio of the same cut model and of the whole 3B."""
    from benchmarks.pipelines import work_3b

    seconds, layers = 10.0, 1 if args.smoke else REAL_LAYERS
    sides = {
        name: {"pipeline": "voxtral_exp", "method": "lora", "seconds": seconds, "real_layers": layers, **m}
        for name, m in CLIP_SIDES.items()
    }
    runs = alternate(sides, args)
    base = next(iter(CLIP_SIDES))

    def work(mode: dict, cut: int | None) -> float:
        n = clip_tokens(seconds) if mode["audio_tokens"] == "clip" else 375
        frames = 8 * n if mode["encoder_window"] == "clip" else 3000
        return sum(work_3b("voxtral_exp", "lora", audio_tokens=n, encoder_frames=frames, layers=cut))

    cut = {name: work(m, layers) for name, m in CLIP_SIDES.items()}
    whole = {name: work(m, None) for name, m in CLIP_SIDES.items()}
    base_rate = statistics.median(r["samples_per_s"] for r in runs[base])
    print(
        f"\nreal shapes: Voxtral-Mini-3B's widths and vocabulary, {layers} layers per tower, LoRA r=8, "
        f"batch {args.batch_size}, {seconds:g} s clips (ratios against: {base})"
    )
    print(f"  {'side':<32}{'step s (min-max)':>22}{'time ratio':>12}{'FLOP ratio, cut':>17}{'3B FLOP ratio':>15}")
    for name, each in runs.items():
        rate = statistics.median(r["samples_per_s"] for r in each)
        print(
            f"  {name:<32}{median_spread([r['step_s'] for r in each], '{:.2f}'):>22}{rate / base_rate:>11.2f}x"
            f"{cut[base] / cut[name]:>16.2f}x{whole[base] / whole[name]:>14.2f}x"
        )


def projection_section(args) -> None:
    """The 3B: FLOPs per training sample of the reference (which pads) against voxtral_exp's levers,
    by clip length; 'cache' is over 3 epochs (the encoder runs once, in the fill)."""
    from benchmarks.pipelines import flops_3b, work_3b

    columns = ("exact", "exact+cache", "clip", "clip+cache", "clip+window", "clip+window+cache")
    for method in ("lora", "full"):
        reference, axolotl = flops_3b("reference", method), flops_3b("axolotl-style", method)
        encoder, rest = work_3b("voxtral_exp", method)
        print(
            f"\n3B projection, {method}: the reference's FLOPs per sample over voxtral_exp's (axolotl-style "
            f"pads too: {reference / axolotl:.2f}x the reference)"
        )
        print(f"  {'clip':>6}{'tokens':>8}" + "".join(f"{c:>19}" for c in columns))
        for seconds in PROJECTED_SECONDS[1:2] if args.smoke else PROJECTED_SECONDS:
            _, clip_rest = clip_work_3b(method, CLIP_SIDES["clip tokens"], seconds)
            window_encoder, _ = clip_work_3b(method, CLIP_SIDES["clip tokens + encoder window"], seconds)
            work = (
                encoder + rest,
                encoder / 3 + rest,
                encoder + clip_rest,
                encoder / 3 + clip_rest,
                window_encoder + clip_rest,
                window_encoder / 3 + clip_rest,
            )
            print(f"  {seconds:>5g}s{clip_tokens(seconds):>8}" + "".join(f"{reference / w:>18.2f}x" for w in work))


def quickstart_section(args) -> None:
    """The quickstart (`make run`'s config: tiny-whisper, encoder cache warm) trained for the same
    steps with 375 tokens per chunk and with the clip's own, alternated; Trainer's samples/s."""
    steps = 4 if args.smoke else 60
    common = [
        "experiment=quickstart",
        f"trainer.max_steps={steps}",
        "trainer.eval_strategy=no",
        "trainer.eval_on_start=false",
        "evaluation.wer_at_end=false",
        "evaluation.wer_during_training=false",
        "trainer.load_best_model_at_end=false",
        "trainer.save_strategy=no",
        "tracking.enabled=false",
    ]
    rates: dict[str, list[float]] = {"chunk": [], "clip": []}
    with tempfile.TemporaryDirectory(prefix="voxtral_quickstart_") as scratch:
        for i, mode in enumerate(
            ["chunk"] + [m for r in range(args.pairs) for m in (("chunk", "clip") if r % 2 == 0 else ("clip", "chunk"))]
        ):
            run_dir = Path(scratch) / f"run{i}"
            proc = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "train.py"),
                    *common,
                    f"model.audio_tokens={mode}",
                    f"hydra.run.dir={run_dir}",
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if proc.returncode != 0:
                sys.exit(f"quickstart ({mode}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            if i:  # the first run warms the encoder cache (shared by both modes) and is not counted
                rates[mode].append(json.loads((run_dir / "train_results.json").read_text())["train_samples_per_second"])
    chunk, clip = (statistics.median(rates[m]) for m in ("chunk", "clip"))
    print(
        f"\nquickstart (tiny-whisper, warm encoder cache), {steps} steps: samples/s chunk "
        f"{median_spread(rates['chunk'], '{:.1f}')}, clip {median_spread(rates['clip'], '{:.1f}')}: clip {clip / chunk:.2f}x "
        "(shows the lever removes work on this model; not a headline)"
    )


def encoder_share_3b(flops_3b) -> float:
    """The frozen encoder's share of a voxtral_exp LoRA step on the 3B (counted, not timed)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import VoxtralEncoderConfig
    from transformers.models.voxtral.modeling_voxtral import VoxtralEncoder

    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        VoxtralEncoder(VoxtralEncoderConfig())(torch.zeros(1, 128, 3000))
    return counter.get_total_flops() / flops_3b("voxtral_exp", "lora")


if __name__ == "__main__":
    main()

"""benchmarks/learning.py --task transfer: does a Voxtral pretrained on padded chunks adapt to
clip tokens under LoRA, as users fine-tune the 3B? It decides the default audio rule
(RESULTS.md, "Clip tokens as the default?", states the rule before the run).

Stage 1, "the pretrained model" (once; reused by every side and seed, and by a later call with
the same --out): `experiment=multilingual` (model=base-whisper: Whisper base's multilingual
encoder, frozen, and a random 256-wide language model) trained with Voxtral's own rule
(`model.audio_tokens=chunk model.encoder_window=chunk`: 375 audio tokens per 30 s chunk, as the
3B was pretrained) on digit strings in English, French, German and Spanish, until its held-out
WER stops improving (early stopping, patience 3 evaluations; the best checkpoint is kept).

Stage 2, the fine-tuning a user does: LoRA (`method=lora`, r 8, the language model only, the
projector frozen: the preset) on a language stage 1 never heard, Portuguese digit strings
(European voices; the unseen set in Brazilian voices and other lengths). New words in a new
language: the adaptation a user fine-tunes for, and one where the model cannot just recall what
stage 1 taught. Each side starts from the same stage-1 model:
- chunk: Voxtral's rule, as pretrained;
- clip: only the audio tokens that cover the clip (`model.audio_tokens=clip`);
- clip+window: the same with the encoder run on the clip's own frames (`model.encoder_window=clip`).
A constant learning rate (after 5% warm-up), evaluated every --eval-every steps, so the held-out
WER at step S on the curve is the WER of a run of S steps: "equal steps" is the curve at
--steps; each run then goes on to its own plateau (early stopping, patience 4, at most
2 x --steps), and its final/ is its best checkpoint.

Printed per side (median and range over seeds): held-out WER at equal steps and at its plateau;
the stage-1 model's zero-shot WER on Portuguese under the side's rule (the step-0 evaluation:
LoRA starts as the identity); the steps to reach the chunk side's WER at equal steps; WER on
unseen voices and lengths; the cross case (served with the other rule). Then the lines
`held-out WER after [side]: X` (equal steps, median) and the decision
`default after the decision: model.audio_tokens=Y model.encoder_window=Z`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.learning import ROOT, cached_examples, spread, synthesize

SIDES = {  # side: (model.audio_tokens, model.encoder_window)
    "chunk": ("chunk", "chunk"),
    "clip": ("clip", "chunk"),
    "clip+window": ("clip", "clip"),
}
CROSS = {"chunk": "clip", "clip": "chunk", "clip+window": "chunk"}  # served with the other rule
STAGE1 = {"clips": 150, "eval_clips": 10, "max_steps": 1200, "eval_every": 100}  # clips per language
SMOKE_STAGE1 = {"clips": 2, "eval_clips": 1, "max_steps": 4, "eval_every": 2}


def report_transfer(work: Path, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    stage1 = STAGE1 if not args.smoke else SMOKE_STAGE1
    if args.smoke:
        args.eval_every = 2
    cache = (args.encoder_cache or work / "encoder_cache").resolve()
    pretrained = pretrain(work, stage1, cache)
    print(f"stage 1 (the pretrained model, chunk): run directory: {pretrained.parent}")

    sets = ["held-out", "unseen voices and lengths"]
    manifests = synthesize(
        work / "portuguese",
        {"train": args.train_clips, **dict.fromkeys(sets, args.eval_clips)},
        seed=1,
        task="multilingual",
        languages=["pt"],
    )
    print(
        f"stage 2: LoRA on Portuguese digit strings (never heard in stage 1): {args.train_clips} train clips, "
        f"held-out sets of {args.eval_clips}; {args.steps} equal steps, evaluated every {args.eval_every}, then on "
        f"to each run's plateau (at most {2 * args.steps} steps)"
    )
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for seed in range(args.seeds):
        for side in SIDES:  # alternated: a side's seeds never run back to back
            run = fine_tune(side, seed, pretrained, manifests, work / f"{side}-seed{seed}", cache, args)
            run["unseen"] = served_wer(run["run_dir"], manifests[sets[1]], cache, *SIDES[side])
            run["cross"] = served_wer(run["run_dir"], manifests[sets[0]], cache, CROSS[side], "chunk")
            runs[side].append(run)
            print(
                f"{side} seed {seed}: train.py {run['seconds']:.0f} s; zero-shot {run['curve'][0][1]:.3f}; at step "
                f"{args.steps}: {fmt(run['at_equal'])}; plateau {run['best']:.3f} at step {run['best_step']} "
                f"(stopped at {run['curve'][-1][0]}); unseen voices and lengths {run['unseen']:.3f}; served "
                f"{CROSS[side]}: {run['cross']:.3f}; curve: "
                + ", ".join(f"{step}: {wer:.3f}" for step, wer in run["curve"])
            )

    target = statistics.median(equal_or_plateau(r) for r in runs["chunk"])
    print(f"the chunk side's held-out WER at {args.steps} steps (the target): {target:.3f}")
    steps_to = {side: [first_step_at(r["curve"], target) for r in runs[side]] for side in SIDES}
    for side in SIDES:
        rows = runs[side]
        print(
            f"[{side}] held-out WER at {args.steps} steps {spread([equal_or_plateau(r) for r in rows])}; at its "
            f"plateau {spread([r['best'] for r in rows])} (steps {', '.join(str(r['best_step']) for r in rows)}); "
            f"stage-1 zero-shot under this rule {spread([r['curve'][0][1] for r in rows])}; steps to reach "
            f"{target:.3f}: {', '.join(str(s) if s is not None else 'never' for s in steps_to[side])}; unseen voices "
            f"and lengths {spread([r['unseen'] for r in rows])}; served {CROSS[side]} {spread([r['cross'] for r in rows])}; "
            f"train.py {spread([r['seconds'] for r in rows])} s"
        )
    audio_tokens, encoder_window = decide(runs, steps_to)
    print(f"benchmark wall time: {time.perf_counter() - began:.0f} s")
    for side in SIDES:
        print(f"held-out WER after [{side}]: {statistics.median(equal_or_plateau(r) for r in runs[side]):.3f}")
    print(f"default after the decision: model.audio_tokens={audio_tokens} model.encoder_window={encoder_window}")


def decide(runs: dict[str, list[dict]], steps_to: dict[str, list[int | None]]) -> tuple[str, str]:
    """RESULTS.md's rule, fixed before the run: a clip side becomes the default if its median
    held-out WER at equal steps is within the chunk side's seed range or below it, and its median
    steps to reach the chunk side's median are no more than the chunk side's own; of two that
    qualify, clip+window (the cheaper). Otherwise chunk stays."""
    chunk_worst = max(equal_or_plateau(r) for r in runs["chunk"])
    chunk_steps = median_steps(steps_to["chunk"])
    for side in ("clip+window", "clip"):
        wer = statistics.median(equal_or_plateau(r) for r in runs[side])
        steps = median_steps(steps_to[side])
        ok = wer <= chunk_worst and steps <= chunk_steps
        print(
            f"decision rule, {side}: median WER {wer:.3f} {'<=' if wer <= chunk_worst else '>'} the chunk side's "
            f"worst seed {chunk_worst:.3f}; median steps to the target {steps} "
            f"{'<=' if steps <= chunk_steps else '>'} chunk's {chunk_steps}: {'qualifies' if ok else 'does not'}"
        )
        if ok:
            return SIDES[side]
    return SIDES["chunk"]


def median_steps(steps: list[int | None]) -> float:
    """Median over seeds; a seed that never reached the target counts as infinitely many."""
    return statistics.median(float("inf") if s is None else s for s in steps)


def equal_or_plateau(run: dict) -> float:
    """Held-out WER at equal steps; a run that stopped at its plateau before them keeps its best."""
    return run["at_equal"] if run["at_equal"] is not None else run["best"]


def first_step_at(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, wer in curve if wer <= target + 1e-9), None)


def fmt(value: float | None) -> str:
    return "n/a (stopped at its plateau before)" if value is None else f"{value:.3f}"


def pretrain(work: Path, stage1: dict, cache: Path) -> Path:
    """Stage 1's final/ (trained once: a completed run in work/stage1 is reused)."""
    run_dir = work / "stage1"
    record = run_dir / "run.json"
    if record.is_file() and json.loads(record.read_text()).get("status") == "completed":
        print(f"stage 1: reusing {run_dir}")
        return run_dir / "final"
    manifests = synthesize(
        work / "stage1-data",
        {"train": stage1["clips"], "held-out": stage1["eval_clips"]},
        task="multilingual",
    )
    every = stage1["eval_every"]
    run = train_py(
        [
            "experiment=multilingual",
            "model.audio_tokens=chunk",
            "model.encoder_window=chunk",
            f"dataset.train_manifest={manifests['train']}",
            f"dataset.eval_manifest={manifests['held-out']}",
            f"trainer.max_steps={stage1['max_steps']}",
            f"trainer.eval_steps={every}",
            f"trainer.save_steps={every}",
            "trainer.load_best_model_at_end=true",
            "trainer.metric_for_best_model=eval_wer",
            "trainer.save_total_limit=2",  # the best and the last (whose trainer_state holds the whole curve)
            "evaluation.early_stopping_patience=3",
        ],
        run_dir,
        cache,
    )
    print(
        f"stage 1: {stage1['clips']} clips per language (en, fr, de, es), train.py {run['seconds']:.0f} s; held-out "
        f"WER {run['curve'][0][1]:.3f} -> best {run['best']:.3f} at step {run['best_step']} (stopped at "
        f"{run['curve'][-1][0]}): " + ", ".join(f"{step}: {wer:.3f}" for step, wer in run["curve"])
    )
    return run_dir / "final"


def fine_tune(
    side: str, seed: int, pretrained: Path, manifests: dict, run_dir: Path, cache: Path, args: argparse.Namespace
) -> dict:
    audio_tokens, encoder_window = SIDES[side]
    run = train_py(
        [  # experiment=multilingual's data, evaluation and cache settings, with the LoRA preset
            "model=base-whisper",
            "method=lora",
            "hardware=cpu",
            "experiment_name=transfer",
            "model.random_init=false",
            f"model.name_or_path={pretrained}",
            f"model.audio_tokens={audio_tokens}",
            f"model.encoder_window={encoder_window}",
            f"seed={seed}",
            f"dataset.train_manifest={manifests['train']}",
            f"dataset.eval_manifest={manifests['held-out']}",
            f"trainer.max_steps={2 * args.steps}",
            f"trainer.eval_steps={args.eval_every}",
            f"trainer.save_steps={args.eval_every}",
            "trainer.learning_rate=1e-3",
            "trainer.lr_scheduler_type=constant_with_warmup",
            "trainer.warmup_steps=0.05",
            "trainer.per_device_train_batch_size=8",
            "trainer.per_device_eval_batch_size=16",
            "trainer.num_train_epochs=1000",
            "+trainer.eval_on_start=true",
            "trainer.logging_steps=10",
            "trainer.dataloader_num_workers=0",
            "trainer.load_best_model_at_end=true",
            "trainer.metric_for_best_model=eval_wer",
            "trainer.save_total_limit=2",
            "evaluation.wer_during_training=true",
            "evaluation.batch_size=16",
            "evaluation.normalizer=basic",
            "evaluation.early_stopping_patience=4",
            *args.overrides,
        ],
        run_dir,
        cache,
    )
    run["at_equal"] = dict(run["curve"]).get(args.steps)
    return run


def train_py(overrides: list[str], run_dir: Path, cache: Path) -> dict:
    """One train.py run: its wall time and held-out WER curve [(step, WER)], best and where."""
    args = [*overrides, f"speed.encoder_cache={cache}", f"hydra.run.dir={run_dir}", "tracking.enabled=false"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"training failed ({run_dir}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    states = sorted(
        (run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:])
    )
    history = json.loads(states[-1].read_text())["log_history"]
    curve = [(e["step"], e["eval_wer"]) for e in history if "eval_wer" in e]
    best_step, best = min(curve, key=lambda c: (c[1], c[0]))
    return {"seconds": seconds, "curve": curve, "best": best, "best_step": best_step, "run_dir": run_dir}


def served_wer(run_dir: Path, manifest: Path, cache_dir: Path, audio_tokens: str, encoder_window: str) -> float:
    """The run's final/ on ``manifest``, its prompts built with ``audio_tokens`` and the encoder
    on ``encoder_window``: the rule it trained with, or the other (the cross case)."""
    from transformers.utils import logging as transformers_logging

    from voxtral_exp.model.audio_path import attach
    from voxtral_exp.model.modeling import load_trained
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.evaluation import evaluate_wer

    transformers_logging.disable_progress_bar()
    cfg = load_run_config(run_dir)
    model = attach(load_trained(str(run_dir / "final")), encoder_window=encoder_window == "clip")
    examples, featurizer, cache = cached_examples(
        run_dir, manifest, cache_dir, model, serve=audio_tokens, window=encoder_window
    )
    metrics, _ = evaluate_wer(model, featurizer, examples, cfg.evaluation, cfg.dataset.filters.max_label_tokens, cache)
    return metrics["eval_wer"]

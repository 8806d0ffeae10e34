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
Every stage-2 run trains 2 x --steps at a constant learning rate (after 5% warm-up), evaluated
every --eval-every steps on the held-out set, with no early stopping and the same batches on
every side (no length grouping): "equal steps" is the curve at --steps (a checkpoint is kept
there), the plateau is the best evaluation after step 0, flagged when it is among the last three.

Printed per side (median and range over seeds): held-out WER at equal steps and at its plateau;
the stage-1 model's zero-shot WER on Portuguese under the side's rule (the step-0 evaluation:
LoRA starts as the identity), and on stage 1's own held-out languages under each rule (what the
rule change alone costs before any fine-tuning); the steps to reach the chunk side's median WER
at equal steps and stay there at the next evaluation; at equal steps, WER on unseen voices and
lengths and the cross case (served with the other token rule). Then the lines
`held-out WER after [side]: X` (equal steps, median) and the decision
`default after the decision: model.audio_tokens=Y model.encoder_window=Z` (RESULTS.md's rule,
``decide``). A completed run in --out with the same settings is read back, not trained again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.learning import ROOT, served_metrics, spread, synthesize

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
    if args.steps % args.eval_every:
        sys.exit(f"--steps {args.steps} must be a multiple of --eval-every {args.eval_every}: the curve is read there")
    cache = (args.encoder_cache or work / "encoder_cache").resolve()
    pretrained, stage1_held_out = pretrain(work, stage1, cache)
    print(f"stage 1 (the pretrained model, chunk): run directory: {pretrained.parent}")
    # what the rule change alone costs the pretrained model, on the languages it knows
    own = {
        side: served_wer(pretrained.parent, stage1_held_out, cache, *rule, final=pretrained)
        for side, rule in SIDES.items()
    }
    print(
        "stage 1 on its own held-out set (en, fr, de, es) served under each rule, before any fine-tuning: "
        + ", ".join(f"{side} {wer:.3f}" for side, wer in own.items())
    )

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
        f"held-out sets of {args.eval_clips}; every run {2 * args.steps} steps, evaluated every {args.eval_every}: "
        f"equal steps = the curve at {args.steps}, plateau = its best evaluation after step 0"
    )
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for seed in range(args.seeds):
        for side in SIDES:  # alternated: a side's seeds never run back to back
            run = fine_tune(side, seed, pretrained, manifests, work / f"{side}-seed{seed}", cache, args)
            at_equal = run["run_dir"] / "checkpoints" / f"checkpoint-{args.steps}"  # the equal-steps model
            run["unseen"] = served_wer(run["run_dir"], manifests[sets[1]], cache, *SIDES[side], final=at_equal)
            run["cross"] = {
                other: served_wer(run["run_dir"], manifests[sets[0]], cache, *SIDES[other], final=at_equal)
                for other in SIDES
                if SIDES[other][0] != SIDES[side][0]  # served with the other token rule
            }
            runs[side].append(run)
            print(
                f"{side} seed {seed}: train.py {took([run])}; zero-shot {run['curve'][0][1]:.3f}; at step "
                f"{args.steps}: {run['at_equal']:.3f}; plateau {run['best']:.3f} at step {run['best_step']}"
                f"{' (still falling)' if still_falling(run['curve']) else ''}; at step {args.steps}: unseen voices "
                f"and lengths {run['unseen']:.3f}, "
                + ", ".join(f"served {other} {wer:.3f}" for other, wer in run["cross"].items())
                + "; curve: "
                + ", ".join(f"{step}: {wer:.3f}" for step, wer in run["curve"])
            )

    target = statistics.median(r["at_equal"] for r in runs["chunk"])
    print(f"the chunk side's held-out WER at {args.steps} steps (the target): {target:.3f}")
    steps_to = {side: [steps_to_reach(r["curve"], target) for r in runs[side]] for side in SIDES}
    for side in SIDES:
        rows = runs[side]
        cross = ", ".join(f"served {other} {spread([r['cross'][other] for r in rows])}" for other in rows[0]["cross"])
        print(
            f"[{side}] held-out WER at {args.steps} steps {spread([r['at_equal'] for r in rows])}; at its plateau "
            f"{spread([r['best'] for r in rows])} (steps {', '.join(str(r['best_step']) for r in rows)}); zero-shot on "
            f"Portuguese under this rule {spread([r['curve'][0][1] for r in rows])}; steps to reach {target:.3f} (and "
            f"stay for two evaluations): {', '.join(str(s) if s is not None else 'never' for s in steps_to[side])}; at "
            f"step {args.steps}: unseen voices and lengths {spread([r['unseen'] for r in rows])}, {cross}; train.py "
            f"{took(rows)} (cache fills and evaluations included: not a speed figure)"
        )
    audio_tokens, encoder_window = decide(runs, steps_to)
    print(f"benchmark wall time: {time.perf_counter() - began:.0f} s")
    for side in SIDES:
        print(f"held-out WER after [{side}]: {statistics.median(r['at_equal'] for r in runs[side]):.3f}")
    print(f"default after the decision: model.audio_tokens={audio_tokens} model.encoder_window={encoder_window}")


def decide(runs: dict[str, list[dict]], steps_to: dict[str, list[int | None]]) -> tuple[str, str]:
    """RESULTS.md's rule, fixed before the run: a clip side becomes the default if (1) its median
    held-out WER at equal steps is at most the chunk side's worst seed, (2) its median steps to
    reach the chunk side's median (and stay there two evaluations) are no more than the chunk
    side's own, and (3) its median WER on unseen voices and lengths is at most the chunk side's
    worst seed there; of two that qualify, clip+window (the cheaper). Otherwise chunk stays."""
    chunk_worst = max(r["at_equal"] for r in runs["chunk"])
    chunk_unseen = max(r["unseen"] for r in runs["chunk"])
    chunk_steps = median_steps(steps_to["chunk"])
    for side in ("clip+window", "clip"):
        wer = statistics.median(r["at_equal"] for r in runs[side])
        unseen = statistics.median(r["unseen"] for r in runs[side])
        steps = median_steps(steps_to[side])
        ok = wer <= chunk_worst and steps <= chunk_steps and unseen <= chunk_unseen
        print(
            f"decision rule, {side}: (1) median WER {wer:.3f} {'<=' if wer <= chunk_worst else '>'} the chunk side's "
            f"worst seed {chunk_worst:.3f}; (2) median steps to the target {steps} "
            f"{'<=' if steps <= chunk_steps else '>'} chunk's {chunk_steps}; (3) unseen voices and lengths {unseen:.3f} "
            f"{'<=' if unseen <= chunk_unseen else '>'} chunk's worst seed {chunk_unseen:.3f}: "
            f"{'qualifies' if ok else 'does not'}"
        )
        if ok:
            return SIDES[side]
    return SIDES["chunk"]


def median_steps(steps: list[int | None]) -> float:
    """Median over seeds; a seed that never reached the target counts as infinitely many."""
    return statistics.median(float("inf") if s is None else s for s in steps)


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first evaluated step from which the WER is at or below ``target`` at two evaluations in
    a row (one lucky evaluation does not count); None if it never is."""
    for (step, wer), (_, following) in zip(curve, curve[1:]):
        if wer <= target + 1e-9 and following <= target + 1e-9:
            return step
    return None


def took(runs: list[dict]) -> str:
    """train.py's wall time over ``runs`` (median and range), or 'reused' for runs read back."""
    seconds = [r["seconds"] for r in runs if r["seconds"] is not None]
    return f"{spread(seconds)} s" if seconds else "reused"


def still_falling(curve: list[tuple[int, float]]) -> bool:
    """The best evaluation is among the last three: the run had not reached its plateau."""
    best = min(wer for step, wer in curve if step > 0)
    return any(wer == best for _, wer in curve[-3:])


def pretrain(work: Path, stage1: dict, cache: Path) -> tuple[Path, Path]:
    """(stage 1's final/, its held-out manifest). Trained once: a completed run in work/stage1 with
    these settings is reused, and its curve printed again."""
    run_dir = work / "stage1"
    manifests = synthesize(
        work / "stage1-data",
        {"train": stage1["clips"], "held-out": stage1["eval_clips"]},
        task="multilingual",
    )
    every = stage1["eval_every"]
    overrides = [
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
    ]
    run = train_py(overrides, run_dir, cache)
    stopped = run["curve"][-1][0] < stage1["max_steps"]
    print(
        f"stage 1: {stage1['clips']} clips per language (en, fr, de, es), train.py {took([run])}; held-out "
        f"WER {run['curve'][0][1]:.3f} -> best {run['best']:.3f} at step {run['best_step']} "
        f"({'early stopping' if stopped else 'NOT plateaued: max_steps reached'} at {run['curve'][-1][0]}): "
        + ", ".join(f"{step}: {wer:.3f}" for step, wer in run["curve"])
    )
    return run_dir / "final", manifests["held-out"]


def fine_tune(
    side: str, seed: int, pretrained: Path, manifests: dict, run_dir: Path, cache: Path, args: argparse.Namespace
) -> dict:
    """One stage-2 run of ``side``: 2 x --steps at a constant learning rate, no early stopping,
    checkpoints at --steps (the equal-steps model) and at the end."""
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
            "speed.group_by_length=false",  # the same batches on every side (clip tokens would group by length)
            f"trainer.max_steps={2 * args.steps}",
            f"trainer.eval_steps={args.eval_every}",
            f"trainer.save_steps={args.steps}",
            "trainer.learning_rate=1e-3",
            "trainer.lr_scheduler_type=constant_with_warmup",
            "trainer.warmup_steps=0.05",
            "trainer.per_device_train_batch_size=8",
            "trainer.per_device_eval_batch_size=16",
            "trainer.num_train_epochs=1000",
            "+trainer.eval_on_start=true",
            "trainer.logging_steps=10",
            "trainer.dataloader_num_workers=0",
            "trainer.load_best_model_at_end=false",
            "trainer.save_total_limit=null",
            "evaluation.wer_during_training=true",
            "evaluation.batch_size=16",
            "evaluation.normalizer=basic",
            *args.overrides,
        ],
        run_dir,
        cache,
    )
    run["at_equal"] = dict(run["curve"])[args.steps]
    return run


def train_py(overrides: list[str], run_dir: Path, cache: Path) -> dict:
    """One train.py run (a completed one with the same overrides is read, not trained again): its
    wall time and held-out WER curve [(step, WER)], and its best evaluation after step 0."""
    args = [*overrides, f"speed.encoder_cache={cache}", f"hydra.run.dir={run_dir}", "tracking.enabled=false"]
    record = run_dir / "run.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("status") != "completed" or saved.get("command", [])[1:] != args:
            sys.exit(f"{run_dir} holds another or an unfinished run: remove it, or use another --out")
        seconds = None  # reused
    else:
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
    best_step, best = min((c for c in curve if c[0] > 0), key=lambda c: (c[1], c[0]))
    return {"seconds": seconds, "curve": curve, "best": best, "best_step": best_step, "run_dir": run_dir}


def served_wer(
    run_dir: Path, manifest: Path, cache: Path, audio_tokens: str, encoder_window: str, final: Path
) -> float:
    return served_metrics(run_dir, manifest, cache, audio_tokens, encoder_window, final)["eval_wer"]

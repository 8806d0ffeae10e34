"""Proof that the pipeline learns: train a small Voxtral from scratch on CPU on spoken digit
strings and report held-out WER before and after.

    apt-get install espeak-ng
    .venv/bin/python benchmarks/learning.py              # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/learning.py --smoke      # a minute: the script runs end to end
    .venv/bin/python benchmarks/learning.py --steps 1500 method.train_embeddings=false  # + train.py overrides

Speech: random digit strings ("three one four") spoken by espeak-ng with several English voices
and speeds; the held-out set uses digit strings never seen in training. The model is the tiny
architecture made a little wider (random weights, nothing pretrained), trained with train.py's
own code path (Hydra config, Trainer, label-only loss, encoder cache, generation-based
WER): the projector and language model learn; the random encoder stays frozen.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f1", "en-029"]
SPEEDS = [140, 160, 180]


def make_dataset(folder: Path, n_train: int, n_eval: int, seed: int = 0) -> tuple[Path, Path]:
    """Spoken digit strings; eval strings never occur in training."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to synthesise the speech: apt-get install espeak-ng")
    rng = random.Random(seed)
    seen: set[str] = set()
    splits = {"train": n_train, "eval": n_eval}
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, count in splits.items():
        rows = []
        while len(rows) < count:
            text = " ".join(rng.choice(DIGITS) for _ in range(rng.randint(2, 4)))
            if text in seen:
                continue
            seen.add(text)
            voice, speed = rng.choice(VOICES), rng.choice(SPEEDS)
            wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                                 check=True, capture_output=True).stdout
            audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
            name = f"audio/{split}_{len(rows):04d}.flac"
            sf.write(folder / name, audio, rate)
            rows.append({"audio_path": name, "text": text, "language": "en"})
        paths[split] = folder / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths["train"], paths["eval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny data and a few steps")
    parser.add_argument("--train-clips", type=int, default=1200)
    parser.add_argument("--eval-clips", type=int, default=60)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", type=Path, help="keep the data (DIR/digits) and the run (DIR/run) here")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. method.train_embeddings=false")
    args = parser.parse_args()
    if args.smoke:
        args.train_clips, args.eval_clips, args.steps = 16, 4, 4

    # everything in a folder that is removed at the end (a full-training run is ~0.5 GB),
    # unless --out keeps it: DIR/digits (the data) and DIR/run (the run directory)
    work = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="voxtral_learning_"))
    try:
        train_and_report(work, args)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def train_and_report(work: Path, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    train_manifest, eval_manifest = make_dataset(work / "digits", args.train_clips, args.eval_clips)
    data_seconds = time.perf_counter() - start
    run_dir = work / "run"
    overrides = [
        "experiment=learning", f"dataset.train_manifest={train_manifest}", f"dataset.eval_manifest={eval_manifest}",
        f"trainer.max_steps={args.steps}", f"trainer.eval_steps={max(1, args.steps // 3)}",
        f"trainer.save_steps={args.steps}",
        f"hydra.run.dir={run_dir}", "tracking.enabled=false", *args.overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], cwd=ROOT, capture_output=True, text=True)
    train_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{args.steps}" / "trainer_state.json"
    history = json.loads(checkpoint.read_text())["log_history"]
    before = next(e for e in history if "eval_wer" in e and e["step"] == 0)
    after = json.loads((run_dir / "eval_results.json").read_text())
    print(f"learning: {args.train_clips} train clips, {args.eval_clips} held-out clips of unseen digit strings, "
          f"{args.steps} steps")
    print(f"data synthesis {data_seconds:.0f} s, training + evaluation {train_seconds:.0f} s")
    print(f"held-out WER before: {before['eval_wer']:.3f}  CER before: {before['eval_cer']:.3f}")
    print(f"held-out WER after:  {after['eval_wer']:.3f}  CER after:  {after['eval_cer']:.3f}")
    curve = ", ".join(f"step {e['step']}: {e['eval_wer']:.3f}" for e in history if "eval_wer" in e)
    print(f"held-out WER during training: {curve}")
    if args.out:
        print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()

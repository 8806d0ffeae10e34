"""`benchmarks/learning.py --task streaming`: does a small Realtime model learn to stream?

Data: spoken digit strings with exact word times. Every word is synthesised alone by espeak-ng
(six English voices, four speeds, three pitches), its silence trimmed, and the words concatenated with random
pauses (0.05-0.35 s) after a random lead (0.1-0.5 s), so each word's start and end are known to
the sample; a random gain and faint noise keep repeats apart. Training strings have 2-4 digits;
the held-out strings (the run's eval set) are strings training never has, in the same voices.

Each seed trains `model=realtime-tiny` from scratch with train.py (full fine-tuning, the default
480 ms delay) and reports:
- held-out WER through transformers' streaming generation (the run's own final evaluation);
- train/serve agreement: on 40 training clips, the share of frames where the model's greedy
  stream equals the stream it was trained on (goal >= 95%);
- self-alignment: `python -m voxtral_exp.realtime.align` with the trained model on the held-out
  manifest without its words; the share of words whose recovered start is within one frame
  (80 ms) of the synthetic start (goal >= 90%);
- live = offline: the share of held-out clips whose stream, fed live 80 ms at a time through
  transformers' streaming generation, is token for token the offline one;
- unseen voices: WER on 40 more strings in two voices training never used.
Goals: held-out WER <= 0.15 within 15 minutes of train.py on this machine (2 cores), 3 seeds.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f1", "en-029"]
SPEEDS = [130, 150, 170, 190]
PITCHES = [35, 50, 65]
UNSEEN_VOICES = ["en-gb-scotland", "en-us-nyc+m7"]
RATE = 22050  # espeak-ng's


def _word_audio(word: str, voice: str, speed: int, pitch: int, cache: dict) -> np.ndarray:
    """One word alone, its leading and trailing silence cut."""
    key = (word, voice, speed, pitch)
    if key not in cache:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
            check=True,
            capture_output=True,
        ).stdout
        audio, _ = sf.read(io.BytesIO(wav), dtype="float32")
        loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
        cache[key] = audio[loud[0] : loud[-1] + 1]
    return cache[key]


def synthesize(folder: Path, n_train: int, n_eval: int, seed: int = 0) -> dict[str, Path]:
    """train.jsonl, held-out.jsonl and unseen-voices.jsonl, each row with its exact "words"."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to synthesise the speech: apt-get install espeak-ng")
    rng = random.Random(seed)
    cache: dict = {}
    seen: set[str] = set()
    manifests = {}
    for name, count in (("train", n_train), ("held-out", n_eval), ("unseen-voices", n_eval)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        rows = []
        while len(rows) < count:
            words = [rng.choice(DIGITS) for _ in range(rng.choice((2, 3, 4)))]
            text = " ".join(words)
            if text in seen:
                continue
            seen.add(text)
            voice = rng.choice(UNSEEN_VOICES if name == "unseen-voices" else VOICES)
            speed, pitch = rng.choice(SPEEDS), rng.choice(PITCHES)
            pieces, timings = [np.zeros(int(rng.uniform(0.1, 0.5) * RATE), np.float32)], []
            at = len(pieces[0])
            for i, word in enumerate(words):
                audio = _word_audio(word, voice, speed, pitch, cache) * rng.uniform(0.6, 1.0)
                timings.append({"word": word, "start": round(at / RATE, 4), "end": round((at + len(audio)) / RATE, 4)})
                pause = np.zeros(int(rng.uniform(0.05, 0.35) * RATE), np.float32)
                pieces += [audio, pause] if i < len(words) - 1 else [audio]
                at += len(audio) + (len(pause) if i < len(words) - 1 else 0)
            pieces.append(np.zeros(int(rng.uniform(0.1, 0.3) * RATE), np.float32))
            clip = np.concatenate(pieces)
            clip += np.random.default_rng(len(rows) + 7919 * seed).normal(0, 0.001, len(clip)).astype(np.float32)
            path = folder / name / f"{len(rows):04d}.flac"
            sf.write(path, clip, RATE)
            rows.append({"audio_path": str(path), "text": text, "language": "en", "words": timings})
        manifests[name] = folder / f"{name}.jsonl"
        manifests[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifests


def train(manifests: dict[str, Path], run_dir: Path, seed: int, steps: int, overrides: list[str]) -> float:
    """train.py with model=realtime-tiny on the synthetic data; returns its wall time."""
    every = max(1, steps // 4)
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "model=realtime-tiny",
        "method=full",
        "method.freeze_audio_tower=false",  # from scratch: the encoder learns too
        "hardware=cpu",
        f"dataset.train_manifest={manifests['train']}",
        f"dataset.eval_manifest={manifests['held-out']}",
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
        "tracking.enabled=false",
        f"trainer.max_steps={steps}",
        f"trainer.eval_steps={every}",
        f"trainer.save_steps={every}",
        "evaluation.wer_during_training=true",  # the held-out WER curve, in the checkpoints' log history
        *TRAINING,
        *overrides,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - start


TRAINING = [
    "trainer.learning_rate=2e-3",
    "trainer.warmup_steps=50",
    "trainer.lr_scheduler_type=cosine",
    "trainer.weight_decay=0.0",
    "trainer.per_device_train_batch_size=16",
    "trainer.load_best_model_at_end=false",  # the last model is the one scored
    "trainer.logging_steps=50",
]


def agreement_and_alignment(run_dir: Path, manifests: dict[str, Path]) -> tuple[tuple[float, float], float]:
    """((train/serve frame agreement on 40 training clips: all frames, text frames), share of
    held-out words whose start the self-alignment recovers within one frame)."""
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.align import align_manifest
    from voxtral_exp.realtime.serve import frame_agreement

    model, featurizer = load(run_dir)
    train_examples, _ = read_manifest(manifests["train"])
    agreement = frame_agreement(model, featurizer, train_examples[:40])
    truth = [json.loads(line) for line in manifests["held-out"].read_text().splitlines()]
    bare = run_dir / "held-out.bare.jsonl"  # the rows without their words: what self-alignment starts from
    bare.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "words"}) + "\n" for row in truth))
    aligned_path = run_dir / "held-out.aligned.jsonl"
    align_manifest(model, featurizer, bare, aligned_path)
    aligned = [json.loads(line) for line in aligned_path.read_text().splitlines()]
    close = total = 0
    for row, found in zip(truth, aligned):
        for word, recovered in zip(row["words"], found["words"]):
            close += abs(word["start"] - recovered["start"]) <= 0.08
            total += 1
    return agreement, close / total


def wer_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, held-out WER) at each evaluation, from the last checkpoint's log history."""
    last = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return [(h["step"], h["eval_wer"]) for h in history if "eval_wer" in h and "eval_loss" not in h]


def live_equals_offline(run_dir: Path, manifest: Path) -> float:
    """The share of clips whose live stream (80 ms chunks, as a realtime server hears them) is
    token for token the offline one (the whole clip at once: what the WER is computed from)."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.serve import generate_live, generate_stream

    model, featurizer = load(run_dir)
    examples, _ = read_manifest(manifest)
    same = 0
    for example in examples:
        audio = load_audio(example.audio)
        same += generate_live(model, featurizer, audio).tokens == generate_stream(model, featurizer, audio).tokens
    return same / len(examples)


def unseen_voices_wer(run_dir: Path, manifest: Path) -> float:
    from benchmarks.learning import wer
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.serve import stream_hypotheses

    model, featurizer = load(run_dir)
    examples, _ = read_manifest(manifest)
    hypotheses, _ = stream_hypotheses(model, featurizer, examples)
    return wer([e.text for e in examples], hypotheses)


def report_streaming(work: Path, args) -> None:
    """--task streaming: synthesise once, then per seed train, evaluate, align; print the figures."""
    from benchmarks.learning import spread

    manifests = synthesize(work / "streaming", args.train_clips, args.eval_clips)
    results = []
    for seed in range(args.seeds):
        run_dir = work / f"run-seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        seconds = train(manifests, run_dir, seed, args.steps, args.overrides)
        metrics = json.loads((run_dir / "eval_results.json").read_text())
        agreement, aligned = agreement_and_alignment(run_dir, manifests)
        unseen = unseen_voices_wer(run_dir, manifests["unseen-voices"])
        live = live_equals_offline(run_dir, manifests["held-out"])
        curve = wer_curve(run_dir)
        results.append(
            {
                "wer": metrics["eval_wer"],
                "seconds": seconds,
                "agreement": agreement,
                "aligned": aligned,
                "unseen": unseen,
            }
        )
        print(
            f"seed {seed}: held-out WER {metrics['eval_wer']:.3f} (CER {metrics['eval_cer']:.3f}) at a "
            f"{metrics['eval_delay_ms']} ms delay after {seconds / 60:.1f} min of train.py ({args.steps} steps); "
            f"frame agreement {agreement[0]:.3f} (text frames {agreement[1]:.3f}); self-aligned words within one "
            f"frame {aligned:.3f}; unseen voices WER {unseen:.3f}; held-out clips streamed live as offline {live:.3f}",
            flush=True,
        )
        print("  held-out WER by step: " + ", ".join(f"{step}: {w:.3f}" for step, w in curve), flush=True)
        print(f"run directory: {run_dir}", flush=True)
    print(f"held-out WER after: {spread([r['wer'] for r in results])}")
    print(f"train.py minutes: {spread([r['seconds'] / 60 for r in results])}")
    print(f"frame agreement on training clips: {spread([r['agreement'][0] for r in results])}")
    print(f"  on the frames that hold text: {spread([r['agreement'][1] for r in results])}")
    print(f"self-aligned words within one frame: {spread([r['aligned'] for r in results])}")
    print(f"unseen voices WER after: {spread([r['unseen'] for r in results])}")
    print(f"held-out clips whose live stream equals the offline one: {spread([r['live'] for r in results])}")

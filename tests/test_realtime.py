"""Voxtral Realtime: the training stream as the model is served, word timings, self-alignment,
the delay key, and train.py end to end on a small Realtime model."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import FAST, ROOT, compose_config, read_jsonl, run_train
from tests.test_train import card_transcript

RATE = 16000


@pytest.fixture(scope="session")
def rt_processor():
    from voxtral_exp.realtime.model import load_processor

    return load_processor(None, vocab_size=4096)


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, 0.1, int(seconds * RATE))).astype(np.float32)


def test_the_prompt_and_padding_are_what_the_processor_and_mistral_common_build(rt_processor):
    """The stream's prefix is VoxtralRealtimeProcessor's prompt token for token, and its length
    (positions) and mel frames are those of mistral-common's own offline streaming request:
    left padding n_left frames, right padding to a frame plus delay + 1 + 10."""
    from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from voxtral_exp.realtime.stream import StreamFeaturizer

    featurizer = StreamFeaturizer(rt_processor)
    mistral = MistralTokenizer.from_file(rt_processor.tokenizer._tokenizer_path)
    for seconds in (0.7, 2.0, 3.33):
        audio = speech_like(seconds)
        buffer = io.BytesIO()
        sf.write(buffer, audio, RATE, format="WAV", subtype="FLOAT")
        request = TranscriptionRequest(
            audio=base64.b64encode(buffer.getvalue()).decode(), streaming=StreamingMode.OFFLINE, language=None
        )
        tokenized = mistral.encode_transcription(request)
        padded = tokenized.audios[0].audio_array
        inputs = featurizer.inputs(audio)
        assert inputs["prompt_ids"].tolist() == tokenized.tokens == [1] + [32] * (32 + 6)
        assert len(padded) % 1280 == 0 and inputs["input_features"].shape[-1] == len(padded) // 160
        n_clip = -(-len(audio) // 1280)
        assert len(padded) // 1280 == 32 + n_clip + 6 + 1 + 10
        assert len(padded) - len(audio) - 32 * 1280 == (n_clip * 1280 - len(audio)) + 17 * 1280
        online = rt_processor(audio, is_streaming=True, sampling_rate=RATE)["input_ids"][0]
        assert list(online) == inputs["prompt_ids"].tolist()  # the live (vLLM realtime) prompt is the same


def test_each_word_sits_at_its_frame_plus_the_delay_and_labels_cover_the_stream(rt_processor):
    from voxtral_exp.realtime.model import STREAMING_PAD_ID, STREAMING_WORD_ID
    from voxtral_exp.realtime.stream import StreamBuilder

    builder = StreamBuilder(rt_processor)
    tok = rt_processor.tokenizer
    start = 1 + 32 + 6
    prompt = torch.tensor([1] + [32] * 38)
    # "three" starts in frame 3 (0.30 s); "seven" is due in frame 4 but "three" holds it: next free frame
    words = (("three", 0.30, 0.50), ("seven", 0.33, 0.9), ("one", 1.6, 1.9))
    ids, labels = builder(prompt, 80, 25, words)
    three, seven, one = (tok.encode(" " + w, add_special_tokens=False) for w in ("three", "seven", "one"))
    expected = [STREAMING_PAD_ID] * (80 - start)
    at = 3
    expected[at : at + 1 + len(three)] = [STREAMING_WORD_ID, *three]
    at += 1 + len(three)
    expected[at : at + 1 + len(seven)] = [STREAMING_WORD_ID, *seven]
    expected[20 : 21 + len(one)] = [STREAMING_WORD_ID, *one]  # 1.6 s = frame 20
    expected[25] = tok.eos_token_id  # after the clip's 25 frames
    assert ids[:start].tolist() == prompt.tolist()
    assert ids[start:].tolist()[:26] == expected[:26]
    assert (labels[:start] == -100).all() and (labels[start + 26 :] == -100).all()
    assert labels[start : start + 26].tolist() == expected[:26]
    # the model's loss shifts labels by one: the first label is what position start-1 (the
    # prompt's last token, having heard clip frame delay) writes: the text for clip frame 0
    assert labels[start - 1] == -100


def test_the_delay_moves_every_word_and_conditions_the_model(tmp_path):
    from voxtral_exp.realtime.model import load_processor
    from voxtral_exp.realtime.stream import StreamBuilder, StreamCollator

    slow, fast = load_processor(None, None, 480, 4096), load_processor(None, None, 160, 4096)
    assert (slow.num_delay_tokens, fast.num_delay_tokens) == (6, 2)
    words = (("one", 0.5, 0.8),)
    for processor in (slow, fast):
        builder = StreamBuilder(processor)
        prompt = torch.tensor([1] + [32] * (32 + processor.num_delay_tokens))
        ids, _ = builder(prompt, 80, 20, words)
        assert ids.tolist().index(33) == 1 + 32 + processor.num_delay_tokens + 6  # 0.5 s: frame 6
        batch = StreamCollator(processor.num_delay_tokens)(
            [{"input_ids": ids, "labels": ids, "input_features": torch.zeros(128, 640)}]
        )
        assert batch["num_delay_tokens"] == processor.num_delay_tokens
    # the delay is in the tokenizer file every saved folder copies
    fast.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tekken.json").read_text())["audio"]["transcription_delay_ms"] == 160


@pytest.mark.parametrize("delay", [100, 0, 2480, "'480'", True])
def test_an_unsupported_delay_is_refused_naming_the_key(delay):
    from voxtral_exp.run.config import ConfigError, validate

    cfg = compose_config(["model=realtime-tiny", "hardware=cpu", f"model.delay_ms={delay}"])
    with pytest.raises(ConfigError, match="model.delay_ms"):
        validate(cfg)


def test_a_stream_reads_back_into_text_and_word_starts(rt_processor):
    """What the builder writes, read as the model's output, gives the words and their frames."""
    from voxtral_exp.realtime.serve import read_stream
    from voxtral_exp.realtime.stream import StreamBuilder

    builder = StreamBuilder(rt_processor)
    words = (("eight", 0.25, 0.6), ("zero", 0.9, 1.3), ("nine", 1.35, 1.7))
    ids, _ = builder(torch.tensor([1] + [32] * 38), 70, 22, words)
    stream = read_stream(ids[39:].tolist(), rt_processor.tokenizer)
    assert stream.text == "eight zero nine" and stream.ended
    assert [w for w, _ in stream.words] == ["eight", "zero", "nine"]
    for (_, start, _), (_, found) in zip(words, stream.words):
        assert 0 <= start - found < 0.08 or found > start  # the frame it starts in (pushed later if taken)


def test_self_alignment_maps_written_words_onto_the_reference_and_interpolates_the_rest():
    from voxtral_exp.realtime.align import align_words

    reference = ["one", "two", "three", "four"]
    written = [("one", 0.16), ("too", 0.56), ("four", 1.6), ("extra", 1.9)]
    words, matched = align_words(reference, written, 2.0)
    starts = [s for _, s, _ in words]
    assert matched == 3 and [w for w, _, _ in words] == reference
    assert starts[0] == 0.16 and starts[1] == 0.56 and starts[3] == 1.6
    assert starts[1] < starts[2] < starts[3]  # "three", missed, sits between its neighbours
    assert all(end >= start for _, start, end in words) and words[-1][2] == 2.0
    words, matched = align_words(["a", "b"], [], 1.0)  # nothing written: spread over the clip
    assert matched == 0 and [s for _, s, _ in words] == pytest.approx([1 / 3, 2 / 3])


def _words_manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, row in enumerate(rows):
        path = folder / f"clip{i}.wav"
        sf.write(path, speech_like(row.pop("seconds", 1.5), i), RATE)
        out.append({"audio_path": path.name, "text": row.get("text", "one two"), **row})
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in out))
    return manifest


def test_word_timings_come_from_the_manifest_or_ctm_files_and_bad_ones_name_the_row(tmp_path, rt_processor):
    from voxtral_exp.data.filters import DataError
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.data.sources import load_data
    from voxtral_exp.realtime.stream import StreamBuilder
    from voxtral_exp.realtime.words import read_ctm

    builder = StreamBuilder(rt_processor)
    good = [{"word": "one", "start": 0.1, "end": 0.4}, {"word": "two", "start": 0.6, "end": 0.9}]
    crowded = [{"word": "seventeen", "start": 0.01 * i, "end": 0.2} for i in range(12)]
    manifest = _words_manifest(
        tmp_path,
        [
            {"words": good},
            {},  # no timings
            {"words": [{"word": "one", "start": 0.5, "end": 0.4}]},  # ends before it starts
            {"words": [{"word": "one", "start": 0.8, "end": 1.0}, {"word": "two", "start": 0.2, "end": 0.5}]},
            {"words": [{"word": "one", "start": 1.2, "end": 2.5}]},  # past the 1.5 s clip
            {"words": "one two"},  # not a list
            {"words": [{"word": "one", "start": float("nan"), "end": 0.4}]},  # NaN is no time
            {"words": crowded, "text": " ".join(["seventeen"] * 12)},  # more tokens than 80 ms frames
            {"words": good, "text": "one three"},  # timed words that are not the transcript
        ],
    )
    examples, bad = read_manifest(manifest)
    assert examples[0].words == (("one", 0.1, 0.4), ("two", 0.6, 0.9))
    assert len(bad) == 2 and f"{manifest}:6: " in bad[0] and '"words" must be a list' in bad[0]
    assert f"{manifest}:7: " in bad[1] and "finite" in bad[1]

    cfg = compose_config(
        ["model=realtime-tiny", f"dataset.train_manifest={manifest}", f"dataset.eval_manifest={manifest}"]
    )
    with pytest.raises(DataError) as caught:
        load_data(cfg.dataset, 0, stream=builder)
    message = str(caught.value)
    for line, why in (
        (2, "no word timings"),
        (3, "ends (0.40 s) before"),
        (4, "before the word before"),
        (5, "outside the clip"),
        (8, "more than the"),
        (9, "are not its text ('one three')"),
    ):
        assert f"{manifest}:{line}: " in message and why in message
    assert "fix the row's words (or its text), or set dataset.on_error=skip" in message
    cfg.dataset.on_error = "skip"
    data = load_data(cfg.dataset, 0, stream=builder)
    assert len(data.train) == 1
    assert data.report["train"]["dropped"] == {"bad_row": 2, "no_word_timings": 1, "bad_word_timings": 5}

    # CTM, as NeMo Forced Aligner writes it: one file per utterance (audio stem) in ctm/words/, beside
    # ctm/tokens/ and ctm/segments/ (not word timings: never read)
    nfa = tmp_path / "nfa" / "ctm"
    for level in ("words", "tokens", "segments"):
        (nfa / level).mkdir(parents=True)
    (nfa / "words" / "clip1.ctm").write_text(
        "clip1 1 0.08 0.32 one NA lex NA\nclip1 1 0.56 0.40 two NA lex NA\nclip1 1 1.0 0.1 <eps> NA lex NA\n"
    )
    (nfa / "tokens" / "clip1.ctm").write_text("clip1 1 0.08 0.1 ▁o NA lex NA\n")
    assert read_ctm(tmp_path / "nfa")["clip1"] == (("one", 0.08, 0.4), ("two", 0.56, 0.96))
    cfg.dataset.words_ctm = str(tmp_path / "nfa")
    data = load_data(cfg.dataset, 0, stream=builder)
    assert len(data.train) == 2 and data.train[1].words[1] == ("two", 0.56, 0.96)
    # an eval clip elsewhere with a train clip's name would take its timings: refused
    other = _words_manifest(tmp_path / "elsewhere", [{}, {}])
    cfg.dataset.eval_manifest = str(other)
    with pytest.raises(ValueError, match="share the name 'clip1'"):
        load_data(cfg.dataset, 0, stream=builder)
    cfg.dataset.eval_manifest = str(manifest)
    (nfa / "words" / "clip2.ctm").write_text("clip2 1 zero\n")
    with pytest.raises(ValueError, match=r"clip2.ctm:1: expected 'utterance channel start duration word'"):
        load_data(cfg.dataset, 0, stream=builder)


# --- train.py end to end ---------------------------------------------------------------------

RT_FAST = [
    "model=realtime-tiny",
    *[o for o in FAST if not o.startswith("model=")],
    "trainer.per_device_train_batch_size=4",
    "dataset.max_eval_samples=4",
]


@pytest.fixture(scope="session")
def digits_words(tmp_path_factory) -> dict[str, Path]:
    """Spoken digit strings with exact word times (benchmarks/streaming.py's data, small)."""
    from benchmarks.streaming import synthesize

    return synthesize(tmp_path_factory.mktemp("digits_words"), 24, 4)


def realtime_args(digits_words: dict[str, Path]) -> list[str]:
    return [
        *RT_FAST,
        "method=lora",
        f"dataset.train_manifest={digits_words['train']}",
        f"dataset.eval_manifest={digits_words['held-out']}",
        "model.delay_ms=240",
        "trainer.learning_rate=3e-3",
        "trainer.max_steps=8",
        "trainer.save_steps=4",
        "trainer.eval_steps=4",
        "trainer.save_total_limit=4",
    ]


@pytest.fixture(scope="session")
def realtime_run(tmp_path_factory, digits_words) -> Path:
    run_dir = tmp_path_factory.mktemp("rt") / "run"
    run_train([*realtime_args(digits_words), f"hydra.run.dir={run_dir}"], tmp_path_factory.mktemp("trackio"))
    return run_dir


def last_state(run_dir: Path) -> dict:
    last = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((last / "trainer_state.json").read_text())


@pytest.mark.xdist_group("realtime_run")
def test_train_py_fine_tunes_a_realtime_model_on_word_timings(realtime_run, digits_words, capsys):
    """LoRA on the small Realtime model: the loss falls, checkpoints and final/ are saved with
    the delay it trained at, the WER comes from streaming generation and is stated with its
    delay, the card says how to load and stream it, and transcribe serves it."""
    run_dir = realtime_run
    history = json.loads((run_dir / "train_results.json").read_text())
    losses = [h["loss"] for h in last_state(run_dir)["log_history"] if "loss" in h]
    assert history["global_step"] == 8 and losses[-1] < losses[0]
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["eval_delay_ms"] == 240 and "eval_wer" in results and results["per_language"]["en"]["n"] == 4
    final = run_dir / "final"
    assert json.loads((final / "tekken.json").read_text())["audio"]["transcription_delay_ms"] == 240
    assert (final / "adapter_config.json").is_file() and (final / "base_model" / "config.json").is_file()
    card = (final / "README.md").read_text()
    assert "VoxtralRealtimeForConditionalGeneration" in card and "greedy streaming (240 ms delay)" in card
    assert len(read_jsonl(run_dir / "predictions.jsonl")) == 4
    clip = json.loads(digits_words["held-out"].read_text().splitlines()[0])["audio_path"]
    from voxtral_exp import merge, push, transcribe
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.export import ExportError, export
    from voxtral_exp.run.model_card import space_files
    from voxtral_exp.run.record import load_run_config

    # the commands' own main(), in this process (each as `python -m voxtral_exp.<command>` runs it)
    assert transcribe.main([str(run_dir), clip]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{clip}\t")
    transcript = printed.split("\t", 1)[1].strip()
    assert transcript == read_jsonl(run_dir / "predictions.jsonl")[0]["hypothesis"]  # what the run scored
    assert card_transcript(final, Path(clip)) == transcript  # the card's plain transformers code, as written
    files = space_files(dict(load_run_config(run_dir)), str(final))  # the demo Space, loading a local copy
    namespace = {"__name__": "space"}
    exec(compile(files["app.py"], "app.py", "exec"), namespace)
    assert namespace["transcribe"](clip, "") == transcript
    push.main([str(run_dir), "--repo-id", "me/rt", "--dry-run"])
    listed = capsys.readouterr().out
    for name in ("tekken.json", "processor_config.json", "adapter_model.safetensors", "README.md"):
        assert f"  {name}\n" in listed
    assert "base_model/config.json" in listed
    merge.main([str(run_dir)])
    capsys.readouterr()
    assert transcribe.main([str(final / "merged"), clip]) == 0
    assert capsys.readouterr().out.split("\t", 1)[1].strip() == transcript
    with pytest.raises(ExportError, match="is a Voxtral Realtime run: export writes the 2507 models' layout only"):
        export(run_dir, run_dir.parent / "exported")
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.serve import generate_live, generate_stream

    model, featurizer = load(run_dir)
    assert featurizer.processor.num_delay_tokens == 3  # 240 ms, read back from final/
    # live, 80 ms at a time (as a realtime server hears it) = the whole clip at once (the evaluation)
    for row in read_jsonl(digits_words["held-out"]):
        audio = load_audio(row["audio_path"])
        assert generate_live(model, featurizer, audio).tokens == generate_stream(model, featurizer, audio).tokens


def test_check_lists_every_row_a_realtime_run_would_refuse(tmp_path, capsys):
    """`python -m voxtral_exp.check model=realtime-tiny ...` screens word timings too, without training."""
    from voxtral_exp.check import main

    good = [{"word": "one", "start": 0.1, "end": 0.4}, {"word": "two", "start": 0.6, "end": 0.9}]
    manifest = _words_manifest(tmp_path, [{"words": good}, {}])
    status = main(["model=realtime-tiny", f"dataset.train_manifest={manifest}", f"dataset.eval_manifest={manifest}"])
    out = capsys.readouterr().out
    assert status == 1
    assert f"ERROR  {manifest}:2: no word timings" in out and "1 usable (dropped: 1 no_word_timings)" in out


def test_the_released_realtime_architecture_trains_with_lora_saves_and_streams(tmp_path, digits_words):
    """model=voxtral-realtime-4b with random weights, cut to one layer per tower (the real widths,
    vocabulary and delay conditioning): two LoRA steps on the CPU, saved, and transcribed in
    streaming mode by transformers' generation."""
    run_dir = tmp_path / "run"
    run_train(
        [
            "model=voxtral-realtime-4b",
            "model.random_init=true",
            "+model.text_config.num_hidden_layers=1",
            "+model.audio_config.num_hidden_layers=1",
            *[o for o in FAST if not o.startswith("model=")],
            "method=lora",
            f"dataset.train_manifest={digits_words['train']}",
            f"dataset.eval_manifest={digits_words['held-out']}",
            "dataset.max_eval_samples=1",
            "trainer.per_device_train_batch_size=1",
            "trainer.max_steps=2",
            "trainer.eval_strategy=no",
            "trainer.save_strategy=no",
            "trainer.load_best_model_at_end=false",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path / "trackio",
    )
    config = json.loads((run_dir / "final" / "base_model" / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == 3072 and config["audio_config"]["hidden_size"] == 1280
    assert config["text_config"]["vocab_size"] == 131072
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["eval_delay_ms"] == 480 and results["per_language"]["en"]["n"] == 1
    assert json.loads((run_dir / "train_results.json").read_text())["global_step"] == 2


@pytest.mark.xdist_group("realtime_run")
def test_self_alignment_writes_timings_once_beside_the_manifest(realtime_run, digits_words, tmp_path, capsys):
    """`python -m voxtral_exp.realtime.align RUN MANIFEST`: the rows come back in order with a
    "words" field for every reference word, starts in order and inside the clip; it is trainable
    data (the screen accepts it); a second run without --force refuses to overwrite it."""
    rows = [json.loads(line) for line in digits_words["held-out"].read_text().splitlines()]
    bare = tmp_path / "dev.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "words"}) + "\n" for r in rows))
    from voxtral_exp.errors import UserError
    from voxtral_exp.realtime import align

    assert align.main([str(realtime_run), str(bare)]) == 0  # what `python -m voxtral_exp.realtime.align` runs
    printed = capsys.readouterr().out
    out = tmp_path / "dev.words.jsonl"
    aligned = read_jsonl(out)
    assert [r["text"] for r in aligned] == [r["text"] for r in rows]
    for row in aligned:
        words = row["words"]
        assert [w["word"] for w in words] == row["text"].split()
        duration = sf.info(row["audio_path"]).duration
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and starts[0] >= 0 and words[-1]["end"] <= duration + 1e-3
    assert f"{len(rows)} rows" in printed
    from voxtral_exp.data.sources import load_data
    from voxtral_exp.inference import load

    cfg = compose_config(["model=realtime-tiny", f"dataset.train_manifest={out}", f"dataset.eval_manifest={out}"])
    builder = load(realtime_run)[1].builder
    assert len(load_data(cfg.dataset, 0, stream=builder).train) == len(rows)
    with pytest.raises(UserError, match="exists: the timings are written once; --force replaces it"):
        align.main([str(realtime_run), str(bare)])
    with pytest.raises(UserError, match="is a folder"):  # never a folder replaced, even with --force
        align.main([str(realtime_run), str(bare), "--out", str(tmp_path), "--force"])
    for bad, why in (
        ({"text": ""}, ":2: empty text"),
        ({"audio_path": str(tmp_path / "nope.flac")}, ":2: no such audio file"),
    ):
        manifest = tmp_path / "bad.jsonl"
        manifest.write_text(json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], **bad}) + "\n")
        with pytest.raises(UserError, match=why):
            align.main([str(realtime_run), str(manifest), "--force"])
        assert not (tmp_path / "bad.words.jsonl").exists()  # nothing written


@pytest.mark.xdist_group("realtime_run")
def test_a_realtime_run_resumed_from_its_checkpoint_matches_the_uninterrupted_one(realtime_run, digits_words, tmp_path):
    """Resuming from step 4 (trainer state, data order, delay) gives steps 5-8 and the adapter of
    the run that was never interrupted."""
    resumed = tmp_path / "resumed"
    checkpoint = realtime_run / "checkpoints" / "checkpoint-4"
    run_train([*realtime_args(digits_words), f"resume={checkpoint}", f"hydra.run.dir={resumed}"], tmp_path / "trackio")

    def losses(run_dir: Path) -> dict[int, float]:
        return {h["step"]: h["loss"] for h in last_state(run_dir)["log_history"] if "loss" in h and h["step"] > 4}

    assert losses(resumed) == pytest.approx(losses(realtime_run), rel=1e-5) and len(losses(resumed)) == 4
    from safetensors.torch import load_file

    a = load_file(realtime_run / "final" / "adapter_model.safetensors")
    b = load_file(resumed / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_bf16_realtime_model_takes_the_collators_batch_and_generates(rt_processor):
    """model.dtype=bfloat16 without autocast (a CPU, or trainer.bf16=false): the encoder does not
    cast its input, so the collator hands features in the model's dtype; generation casts its own."""
    from omegaconf import OmegaConf

    from voxtral_exp.realtime.model import build_model
    from voxtral_exp.realtime.serve import generate_stream
    from voxtral_exp.realtime.stream import StreamCollator, StreamFeaturizer

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "realtime-tiny.yaml")
    model = build_model(cfg, torch.bfloat16, 0)
    featurizer = StreamFeaturizer(rt_processor)
    inputs = featurizer.inputs(speech_like(1.0))
    n = inputs["input_features"].shape[-1] // 8
    ids, labels = featurizer.builder(inputs["prompt_ids"], n, 13, (("one", 0.2, 0.5),))
    batch = StreamCollator(6, torch.bfloat16)([{"input_ids": ids, "labels": labels, **inputs}])
    assert batch["input_features"].dtype == torch.bfloat16
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert generate_stream(model, featurizer, speech_like(1.0)).tokens


@pytest.mark.xdist_group("realtime_run")
def test_a_realtime_run_reproduces_from_what_it_saved(realtime_run, tmp_path):
    """`python -m voxtral_exp.reproduce RUN --out NEW`: the same per-step losses, at the same delay."""
    out = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.reproduce", str(realtime_run), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def losses(run_dir: Path) -> list[float]:
        return [h["loss"] for h in last_state(run_dir)["log_history"] if "loss" in h]

    assert losses(out) == pytest.approx(losses(realtime_run), rel=1e-5)
    assert json.loads((out / "eval_results.json").read_text())["eval_delay_ms"] == 240


def test_full_fine_tuning_trains_every_realtime_weight_the_encoder_included(tmp_path, digits_words):
    """method=full method.freeze_audio_tower=false (how realtime-tiny learns from scratch): the loss
    falls, and final/ is one plain model that loads and streams."""
    run_dir = tmp_path / "full"
    run_train(
        [
            *RT_FAST,
            "method=full",
            "method.freeze_audio_tower=false",
            f"dataset.train_manifest={digits_words['train']}",
            f"dataset.eval_manifest={digits_words['held-out']}",
            "trainer.learning_rate=3e-3",
            "trainer.max_steps=6",
            "trainer.eval_strategy=no",
            "trainer.save_steps=6",
            "trainer.load_best_model_at_end=false",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path / "trackio",
    )
    results = json.loads((run_dir / "train_results.json").read_text())
    assert results["parameters_trainable"] == results["parameters_total"]
    losses = [h["loss"] for h in last_state(run_dir)["log_history"] if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    final = run_dir / "final"
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.inference import load
    from voxtral_exp.realtime.serve import generate_stream

    model, featurizer = load(run_dir)
    clip = read_jsonl(digits_words["held-out"])[0]["audio_path"]
    assert generate_stream(model, featurizer, load_audio(clip)).tokens


def test_a_delay_read_from_a_token_variable_is_refused_before_it_resolves(tmp_path):
    """`model.delay_ms=${oc.env:HF_TOKEN}` (any key reading a secret-looking variable) stops the run
    as a secret in the config, naming the key, before validation would echo the resolved value."""
    from voxtral_exp.run.secrets import SecretInConfigError, refuse_secrets

    cfg = compose_config(["model=realtime-tiny", "model.delay_ms=${oc.env:HF_TOKEN}"])
    with pytest.raises(SecretInConfigError, match="model.delay_ms: secrets never go in the config"):
        refuse_secrets(cfg, tmp_path)
    refuse_secrets(
        compose_config(["model=realtime-tiny", "paths.cache_dir=${oc.env:HOME}/c"]), tmp_path
    )  # not a secret

"""Voxtral Realtime: the training stream as the model is served, word timings, self-alignment,
the delay key, and train.py end to end on a small Realtime model."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import FAST, ROOT, compose_config, read_jsonl, run_train

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


def test_word_timings_come_from_the_manifest_or_ctm_files_and_bad_ones_name_the_row(tmp_path):
    from voxtral_exp.data.filters import DataError
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.data.sources import load_data
    from voxtral_exp.realtime.words import read_ctm

    good = [{"word": "one", "start": 0.1, "end": 0.4}, {"word": "two", "start": 0.6, "end": 0.9}]
    manifest = _words_manifest(
        tmp_path,
        [
            {"words": good},
            {},  # no timings
            {"words": [{"word": "one", "start": 0.5, "end": 0.4}]},  # ends before it starts
            {"words": [{"word": "one", "start": 0.8, "end": 1.0}, {"word": "two", "start": 0.2, "end": 0.5}]},
            {"words": [{"word": "one", "start": 1.2, "end": 2.5}]},  # past the 1.5 s clip
            {"words": "one two"},  # not a list
        ],
    )
    examples, bad = read_manifest(manifest)
    assert examples[0].words == (("one", 0.1, 0.4), ("two", 0.6, 0.9))
    assert len(bad) == 1 and f"{manifest}:6" in bad[0] and '"words" must be a list' in bad[0]

    cfg = compose_config(
        ["model=realtime-tiny", f"dataset.train_manifest={manifest}", f"dataset.eval_manifest={manifest}"]
    )
    with pytest.raises(DataError) as caught:
        load_data(cfg.dataset, 0, words=True)
    message = str(caught.value)
    for line, why in (
        (2, "no word timings"),
        (3, "ends (0.40 s) before"),
        (4, "before the word before"),
        (5, "outside the clip"),
    ):
        assert f"{manifest}:{line}: " in message and why in message
    cfg.dataset.on_error = "skip"
    data = load_data(cfg.dataset, 0, words=True)
    assert len(data.train) == 1
    assert data.report["train"]["dropped"] == {"bad_row": 1, "no_word_timings": 1, "bad_word_timings": 3}

    # CTM, as NeMo Forced Aligner writes it: one file per utterance (audio stem), in ctm/words/
    ctm = tmp_path / "nfa" / "ctm" / "words"
    ctm.mkdir(parents=True)
    (ctm / "clip1.ctm").write_text(
        "clip1 1 0.08 0.32 one NA lex NA\nclip1 1 0.56 0.40 two NA lex NA\nclip1 1 1.0 0.1 <eps> NA lex NA\n"
    )
    assert read_ctm(ctm.parent.parent)["clip1"] == (("one", 0.08, 0.4), ("two", 0.56, 0.96))
    cfg.dataset.words_ctm = str(tmp_path / "nfa")
    data = load_data(cfg.dataset, 0, words=True)
    assert len(data.train) == 2 and data.train[1].words[1] == ("two", 0.56, 0.96)
    (ctm / "clip2.ctm").write_text("clip2 1 zero\n")
    with pytest.raises(ValueError, match=r"clip2.ctm:1: expected 'utterance channel start duration word'"):
        load_data(cfg.dataset, 0, words=True)


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


@pytest.fixture(scope="session")
def realtime_run(tmp_path_factory, digits_words) -> Path:
    run_dir = tmp_path_factory.mktemp("rt") / "run"
    run_train(
        [
            *RT_FAST,
            "method=lora",
            f"dataset.train_manifest={digits_words['train']}",
            f"dataset.eval_manifest={digits_words['held-out']}",
            "model.delay_ms=240",
            "trainer.learning_rate=3e-3",
            "trainer.max_steps=8",
            "trainer.save_steps=4",
            "trainer.eval_steps=4",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path_factory.mktemp("trackio"),
    )
    return run_dir


@pytest.mark.xdist_group("realtime_run")
def test_train_py_fine_tunes_a_realtime_model_on_word_timings(realtime_run, digits_words):
    """LoRA on the small Realtime model: the loss falls, checkpoints and final/ are saved with
    the delay it trained at, the WER comes from streaming generation and is stated with its
    delay, the card says how to load and stream it, and transcribe serves it."""
    run_dir = realtime_run
    history = json.loads((run_dir / "train_results.json").read_text())
    state = json.loads(
        sorted((run_dir / "checkpoints").glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text()
    )
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert history["global_step"] == 8 and losses[-1] < losses[0]
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["eval_delay_ms"] == 240 and "eval_wer" in results and results["per_language"]["en"]["n"] == 4
    final = run_dir / "final"
    assert json.loads((final / "tekken.json").read_text())["audio"]["transcription_delay_ms"] == 240
    assert (final / "adapter_config.json").is_file() and (final / "base_model" / "config.json").is_file()
    card = (final / "README.md").read_text()
    assert "VoxtralRealtimeForConditionalGeneration" in card and "240 ms delay" in card
    assert len(read_jsonl(run_dir / "predictions.jsonl")) == 4
    clip = json.loads(digits_words["held-out"].read_text().splitlines()[0])["audio_path"]
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.transcribe", str(run_dir), clip], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{clip}\t")
    from voxtral_exp.inference import load

    model, featurizer = load(run_dir)
    assert featurizer.processor.num_delay_tokens == 3  # 240 ms, read back from final/


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

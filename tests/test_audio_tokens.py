"""`model.audio_tokens=clip` and `model.encoder_window=clip`: the language model gets only the audio
each clip holds, the same way in training, evaluation, transcribe and the model card's code."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import FULL_RUN, ROOT, SAMPLE, compose_config, read_jsonl, run_train
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.model.audio_path import encode
from voxtral_exp.model.modeling import apply_method, build_model
from voxtral_exp.model.tokens import AUDIO_TOKEN_ID, PAD_TOKEN_ID, audio_tokens
from voxtral_exp.training.collator import TranscriptionCollator


def noise(seconds: float) -> np.ndarray:
    return (np.random.default_rng(int(seconds * 10)).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def model_and_featurizer(processor, tokens: str, window: str = "chunk"):
    cfg = compose_config(["model=tiny", "method=lora", "hardware=cpu", f"model.audio_tokens={tokens}"])
    cfg.model.encoder_window = window
    model = apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method).eval()
    return model, Featurizer(processor, "offline", audio_tokens=tokens)


def batch_of(featurizer, clips: list[np.ndarray]) -> dict:
    features = []
    for audio in clips:
        f = featurizer.prompt(audio, "en")
        f["target_ids"] = featurizer.target("hello there")
        features.append(f)
    batch = TranscriptionCollator(PAD_TOKEN_ID)(features)
    batch.pop("labels")
    return batch


@pytest.mark.parametrize(
    "seconds, chunk, clip", [(1.0, 375, 24), (10.0, 375, 136), (29.9, 375, 375), (30.0, 375, 375), (31.0, 750, 400)]
)
def test_a_clip_keeps_the_tokens_that_cover_it_plus_half_a_second_in_buckets_of_8(seconds, chunk, clip):
    n = round(seconds * 16000)
    assert (audio_tokens(n, "chunk"), audio_tokens(n, "clip")) == (chunk, clip)


def test_a_30_s_clip_gives_identical_logits_in_both_modes(processor):
    clip = noise(30.0)
    chunk_model, chunk_features = model_and_featurizer(processor, "chunk")
    clip_model, clip_features = model_and_featurizer(processor, "clip")
    chunk_batch, clip_batch = batch_of(chunk_features, [clip]), batch_of(clip_features, [clip])
    assert "audio_tokens" not in chunk_batch and clip_batch["audio_tokens"].tolist() == [375]
    assert torch.equal(chunk_batch["input_ids"], clip_batch["input_ids"])
    with torch.no_grad():  # the model's own forward against voxtral_exp's audio hook
        torch.testing.assert_close(
            clip_model(**clip_batch).logits, chunk_model(**chunk_batch).logits, rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("window", ["chunk", "clip"])
def test_placeholders_equal_audio_embeddings_for_short_long_and_boundary_clips(processor, window):
    model, featurizer = model_and_featurizer(processor, "clip", window)
    clips = [noise(s) for s in (1.0, 29.9, 30.0, 31.0)]
    batch = batch_of(featurizer, clips)  # one batch of all four: each clip keeps its own rows
    placeholders = (batch["input_ids"] == AUDIO_TOKEN_ID).sum(dim=1).tolist()
    assert placeholders == [24, 375, 375, 400] == batch["audio_tokens"].tolist()
    assert batch["audio_chunks"].tolist() == [1, 1, 1, 2]
    with torch.no_grad():
        logits = model(**batch).logits  # Voxtral's count check: a mismatch raises
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_the_encoder_window_on_all_3000_frames_is_the_plain_encoder(processor):
    model, featurizer = model_and_featurizer(processor, "clip")
    tower = model.get_base_model().model.audio_tower
    features = featurizer.prompt(noise(12.0), "en")["input_features"]
    with torch.no_grad():
        torch.testing.assert_close(encode(tower, features, 3000), encode(tower, features), rtol=0, atol=1e-6)
        assert encode(tower, features, 8 * 160).shape == (160, tower.config.intermediate_size)


def test_a_clip_run_is_transcribed_by_transcribe_and_the_card_code_as_in_the_run(tmp_path, trackio_dir):
    from tests.test_train import card_transcript

    run_dir = tmp_path / "run"
    # a confident model (the pinned full run's settings): a near-random one flips tokens on float noise
    run_train([*FULL_RUN, "model.audio_tokens=clip", "tracking.enabled=false", f"hydra.run.dir={run_dir}"], trackio_dir)
    assert json.loads((run_dir / "final" / "audio.json").read_text()) == {
        "audio_tokens": "clip",
        "encoder_window": "chunk",
    }
    evaluated = zip(read_jsonl(SAMPLE / "eval.jsonl"), read_jsonl(run_dir / "predictions.jsonl"))
    german = [(row, p) for row, p in evaluated if row["language"] == "de"]
    clips = [str(SAMPLE / row["audio_path"]) for row, _ in german]
    command = [sys.executable, "-m", "voxtral_exp.transcribe", str(run_dir), *clips, "--language", "de"]
    out = subprocess.run([*command, "--max-new-tokens", "8"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [line.split("\t", 1)[1] for line in out.stdout.splitlines()] == [p["hypothesis"] for _, p in german]
    card = (run_dir / "final" / "README.md").read_text()
    assert "model.audio_tokens=clip" in card and "pads every clip to 30 s" in card
    assert "language='de'" in card  # the card's code asks for the first language of the eval set
    assert card_transcript(run_dir / "final", clips[0]) == transcribe_with(run_dir, clips[0], "de")  # 128 tokens


def transcribe_with(run_dir, clip, language: str) -> str:
    """The transcript voxtral_exp.inference gives (the transcribe command's code path), 128 tokens."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.inference import load, transcribe

    model, featurizer = load(run_dir)
    return transcribe(model, featurizer, [load_audio(str(clip))], [language], max_new_tokens=128)[0]

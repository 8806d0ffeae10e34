"""`model.audio_tokens=clip` and `model.encoder_window=clip`: the language model gets only the audio
each clip holds, the same way in training, evaluation, transcribe and the model card's code."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import FAST, ROOT, SAMPLE, compose_config, read_jsonl, run_train
from tests.test_train import card_transcript
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


# LoRA with clip tokens and the encoder window, trained to confidence (a near-random model flips
# tokens on float noise): served by transcribe, merge and the card code as in the run
CLIP_RUN = [
    *FAST,
    "method=lora",
    "method.train_projector=true",
    "trainer.learning_rate=1e-2",
    "trainer.warmup_steps=2",
    "trainer.max_steps=30",
    "trainer.eval_steps=30",
    "trainer.save_steps=30",
    "model.audio_tokens=clip",
    "model.encoder_window=clip",
    "tracking.enabled=false",
]


@pytest.fixture(scope="session")  # session: built once per xdist worker, whatever runs between its tests
def clip_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("clip") / "run"
    run_train([*CLIP_RUN, f"hydra.run.dir={run_dir}"], run_dir.parent / "trackio")
    return run_dir


def test_a_clip_run_is_served_as_trained_by_transcribe_merge_and_the_card_code(clip_run, tmp_path):
    from voxtral_exp.merge import merge

    rule = {"audio_tokens": "clip", "encoder_window": "clip"}
    saved = json.loads((clip_run / "final" / "processor_config.json").read_text())["feature_extractor"]
    assert {key: saved[key] for key in rule} == rule  # in the model's own files, no side file
    assert not (clip_run / "final" / "audio.json").exists()
    rows, predictions = read_jsonl(SAMPLE / "eval.jsonl"), read_jsonl(clip_run / "predictions.jsonl")
    german = [(row, p) for row, p in zip(rows, predictions) if row["language"] == "de"]
    clips = [str(SAMPLE / row["audio_path"]) for row, _ in german]
    command = [sys.executable, "-m", "voxtral_exp.transcribe", str(clip_run), *clips, "--language", "de"]
    out = subprocess.run([*command, "--max-new-tokens", "8"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [line.split("\t", 1)[1] for line in out.stdout.splitlines()] == [p["hypothesis"] for _, p in german]
    # merged, the rule travels with it (processor_config.json) and the merged model transcribes as the run did
    merged = merge(clip_run, tmp_path / "merged")
    saved = json.loads((merged / "processor_config.json").read_text())["feature_extractor"]
    assert {key: saved[key] for key in rule} == rule
    assert transcripts(merged, rows, 8) == [p["hypothesis"] for p in predictions]
    assert any(p["hypothesis"] for p in predictions)  # a model that writes, not one that stops at once
    card = (clip_run / "final" / "README.md").read_text()
    assert "model.audio_tokens=clip" in card and "pads every clip to 30 s" in card
    assert "language='de'" in card  # the card's code asks for the first language of the eval set (sorted)
    assert card_transcript(clip_run / "final", clips[0]) == transcribe_with(clip_run, clips[0], "de")  # 128 tokens


@pytest.mark.parametrize("window", [True, False])
def test_a_clips_encoder_rows_and_transcript_do_not_depend_on_its_batch(clip_run, window):
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.inference import load, transcribe
    from voxtral_exp.model.audio_path import attach, encode_clips, inner

    model, featurizer = load(clip_run)
    attach(model, window)
    tower = inner(model).audio_tower
    rows = read_jsonl(SAMPLE / "train.jsonl")
    one_second = load_audio(str(SAMPLE / rows[0]["audio_path"]))[:16000]
    speech = np.concatenate([load_audio(str(SAMPLE / row["audio_path"])) for row in rows])
    long = np.resize(speech, 25 * 16000)  # 25 s of speech
    others = [speech[i * 16000 : (i + 2 + i % 3) * 16000] for i in range(6)]

    def encoded(batch: list[np.ndarray]) -> torch.Tensor:
        prompts = [featurizer.prompt(audio, "en") for audio in batch]
        features = torch.cat([p["input_features"] for p in prompts])
        chunks = [p["input_features"].shape[0] for p in prompts]
        with torch.no_grad():
            states = encode_clips(tower, features, chunks, [p["audio_tokens"] for p in prompts], window)
        return states[: prompts[0]["audio_tokens"]]

    alone = encoded([one_second])
    for batch in ([one_second, long], [one_second, long, *others]):
        torch.testing.assert_close(encoded(batch), alone, rtol=0, atol=1e-5)
    texts = {
        "alone": transcribe(model, featurizer, [one_second], ["en"], max_new_tokens=8)[0],
        "with 25 s": transcribe(model, featurizer, [one_second, long], ["en"] * 2, max_new_tokens=8)[0],
        "batch of 8": transcribe(model, featurizer, [one_second, long, *others], ["en"] * 8, 8, 8)[0],
        "batch size 1": transcribe(model, featurizer, [one_second, long, *others], ["en"] * 8, 1, 8)[0],
    }
    assert len(set(texts.values())) == 1, texts


def test_the_encoder_window_runs_in_bf16_as_a_gpu_loads_the_model(clip_run):
    """from_pretrained in bf16 keeps the encoder positions in fp32 (transformers does); the window
    path, the encoder cache and transcribe run on such a model without autocast."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.inference import load, transcribe
    from voxtral_exp.model.modeling import load_trained
    from voxtral_exp.training.encoder_cache import EncoderCache

    _, featurizer = load(clip_run)
    model = load_trained(clip_run / "final", torch.bfloat16).eval()
    tower = model.get_base_model().model.audio_tower
    assert tower.embed_positions.weight.dtype == torch.float32 and tower.conv1.weight.dtype == torch.bfloat16
    audio = [load_audio(str(SAMPLE / row["audio_path"])) for row in read_jsonl(SAMPLE / "eval.jsonl")[:2]]
    texts = transcribe(model, featurizer, audio, ["en", "en"], max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    examples, _ = read_manifest(SAMPLE / "eval.jsonl")
    cache = EncoderCache(clip_run.parent / "cache", model, "clip")
    assert cache.fill(model, SpeechDataset(examples[:2], featurizer), 2, 0) == 2


def test_runs_saved_with_audio_json_still_load_and_an_unreadable_rule_is_an_error(clip_run, tmp_path):
    from voxtral_exp.model.audio_rule import AudioRule, AudioRuleError, read_rule
    from voxtral_exp.model.processor import build_offline_processor

    old = tmp_path / "old"
    shutil.copytree(clip_run / "final", old)
    config = json.loads((old / "processor_config.json").read_text())
    rule = {key: config["feature_extractor"].pop(key) for key in ("audio_tokens", "encoder_window")}
    (old / "processor_config.json").write_text(json.dumps(config))
    (old / "audio.json").write_text(json.dumps(rule))  # as voxtral_exp saved it until 2026-12
    predictions = [p["hypothesis"] for p in read_jsonl(clip_run / "predictions.jsonl")]
    assert transcripts(old, read_jsonl(SAMPLE / "eval.jsonl"), 8) == predictions
    assert read_rule(build_offline_processor(), tmp_path) == AudioRule()  # none saved: Voxtral's own
    (tmp_path / "audio.json").write_text(json.dumps({"audio_token": "clip"}))  # there, but without the rule
    with pytest.raises(AudioRuleError, match="holds no audio_tokens or encoder_window"):
        read_rule(build_offline_processor(), tmp_path)
    for bad, message in [
        ({"audio_tokens": "clip"}, "not both"),
        ({"audio_tokens": "1.5 s", "encoder_window": "chunk"}, "1.5 s"),
    ]:
        (old / "processor_config.json").write_text(
            json.dumps({**config, "feature_extractor": {**config["feature_extractor"], **bad}})
        )
        with pytest.raises(AudioRuleError, match=message) as error:
            transcripts(old, [], 8)
        assert str(old) in str(error.value)


def transcripts(folder, rows: list[dict], max_new_tokens: int) -> list[str]:
    """``folder``'s transcripts of the sample ``rows`` in their languages, through voxtral_exp.inference."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.inference import load, transcribe

    model, featurizer = load(folder)
    audio = [load_audio(str(SAMPLE / row["audio_path"])) for row in rows]
    return transcribe(model, featurizer, audio, [row["language"] for row in rows], max_new_tokens=max_new_tokens)


def transcribe_with(run_dir, clip, language: str) -> str:
    """The transcript voxtral_exp.inference gives (the transcribe command's code path), 128 tokens."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.inference import load, transcribe

    model, featurizer = load(run_dir)
    return transcribe(model, featurizer, [load_audio(str(clip))], [language], max_new_tokens=128)[0]

"""`python -m voxtral_exp.export`: Mistral's native layout, read back the way vLLM and transformers'
conversion read it (tests/mistral_reference.py), gives the run's own model and transcripts."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import VoxtralForConditionalGeneration

from tests import mistral_reference
from tests.conftest import ROOT, compose_config, read_jsonl, run_train
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.text import normalize_transcript
from voxtral_exp.errors import run_command
from voxtral_exp.export import ExportError, export, main
from voxtral_exp.inference import collate_prompts, load
from voxtral_exp.model.mistral_format import params, to_mistral
from voxtral_exp.model.modeling import merged_model, random_config

DIGITS = ROOT / "data" / "digits"
# model=tiny-whisper on the spoken digits, 30 steps (cached encoder output): enough for a model
# that writes words rather than stopping at once; what matters is that the exported model is this
# model, logit for logit and transcript for transcript
TINY_WHISPER_RUN = [
    "model=tiny-whisper",
    "hardware=cpu",
    f"dataset.train_manifest={DIGITS / 'train.jsonl'}",
    f"dataset.eval_manifest={DIGITS / 'eval.jsonl'}",
    "dataset.max_train_samples=8",
    "dataset.max_eval_samples=3",
    "trainer.max_steps=30",
    "trainer.warmup_steps=2",
    "trainer.per_device_train_batch_size=4",
    "trainer.eval_strategy=no",  # evaluated once, at the end (predictions.jsonl)
    "trainer.save_strategy=no",  # no checkpoint (~0.8 GB of optimizer state for the full run): final/ is what exports
    "trainer.load_best_model_at_end=false",
    "trainer.dataloader_num_workers=0",
    "evaluation.max_new_tokens=8",
    "tracking.enabled=false",
]


class TrainedOnDemand(dict):
    """{"lora": run dir, "full": run dir} of short model=tiny-whisper runs (one encoder cache),
    each trained the first time a test asks for it."""

    METHODS = {
        "lora": ["method=lora", "method.train_projector=true", "trainer.learning_rate=1e-2"],
        "full": ["method=full", "method.train_embeddings=true", "trainer.learning_rate=3e-3"],
    }

    def __init__(self, tmp: Path):
        super().__init__()
        self.tmp = tmp

    def __missing__(self, method: str) -> Path:
        run_dir = self[method] = self.tmp / method
        args = [*TINY_WHISPER_RUN, *self.METHODS[method], f"speed.encoder_cache={self.tmp / 'cache'}"]
        run_train([*args, f"hydra.run.dir={run_dir}"], self.tmp / "trackio")
        return run_dir


@pytest.fixture(scope="session")  # session: built once per xdist worker, whatever runs between its tests
def tiny_whisper_runs(tmp_path_factory):
    return TrainedOnDemand(tmp_path_factory.mktemp("export"))


# full: `make test-all`; the LoRA case exports its merged model through the same writer, and a full
# model is what merging returns (the full case only skips the merge)
@pytest.mark.parametrize("method", ["lora", pytest.param("full", marks=pytest.mark.slow)])
def test_the_export_is_the_runs_model_as_vllm_and_transformers_read_it(tiny_whisper_runs, method, tmp_path):
    run_dir = tiny_whisper_runs[method]
    out = export(run_dir, tmp_path / "mistral")
    assert sorted(p.name for p in out.iterdir()) == ["consolidated.safetensors", "params.json", "tekken.json"]
    merged = merged_model(run_dir / "final")  # what merge saves (LoRA merged into its base)

    # the weights, mapped back by the published mapping, are the merged model's, bit for bit
    reference = mistral_reference.load(out, tmp_path / "transformers")
    ours, theirs = merged.state_dict(), reference.state_dict()
    assert set(theirs) == set(ours)
    assert not [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert merged.dtype == torch.float32 == reference.dtype  # the training dtype: fp32 on CPU

    # mistral-common's prompt is voxtral_exp's, clip for clip, with and without a language
    tok = mistral_reference.tokenizer(out)
    model, featurizer = load(run_dir)
    assert featurizer.default_language == "en"  # the language of the run's rows, for clips given none
    featurizer.default_language = None  # here both prompts are compared: with a language and without
    rows = read_jsonl(DIGITS / "eval.jsonl")
    clips = [load_audio(str(DIGITS / row["audio_path"])) for row in rows]
    for audio in clips:  # every eval clip
        for language in ("en", None):
            ids, _ = mistral_reference.request(tok, audio, language)
            assert ids == featurizer.prompt(audio, language)["prompt_ids"].tolist()

    # served that way, the exported model computes what the run's model computes and writes its predictions
    for audio, row in zip(clips[:3], rows):
        with torch.no_grad():
            batch = collate_prompts(
                [featurizer.prompt(audio, row["language"])], featurizer.processor.tokenizer.pad_token_id
            )
            torch.testing.assert_close(
                mistral_reference.next_token_logits(reference, tok, audio, row["language"]),
                model(**batch).logits[0, -1],
                rtol=0,
                atol=1e-4,
            )
    predictions = [p["hypothesis"] for p in read_jsonl(run_dir / "predictions.jsonl")]
    assert all(predictions)  # words, not an immediate stop
    served = [mistral_reference.transcribe(reference, tok, a, row["language"], 8) for a, row in zip(clips, rows[:3])]
    served = [normalize_transcript(text) for text in served]  # the eval prompts carry each row's language
    assert served == predictions


def test_bad_input_is_refused_and_nothing_is_written(tiny_whisper_runs, tmp_path):
    run_dir = tiny_whisper_runs["lora"]
    with pytest.raises(ExportError, match="not empty"):
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "notes.txt").write_text("mine")
        export(run_dir, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot be written"):
        export(run_dir, blocker / "out")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "final").symlink_to(run_dir / "final")
    record = json.loads((run_dir / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    with pytest.raises(ExportError, match="interrupted, not completed"):
        export(unfinished, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # the command line: a folder that is not a run, one line (no traceback), exit status 1, nothing written
    with pytest.raises(SystemExit) as exit:
        run_command(lambda: main([str(tmp_path), "--out", str(tmp_path / "out")]))
    assert str(exit.value.code).startswith("error: ") and "is not a finished voxtral_exp run" in str(exit.value.code)
    assert not (tmp_path / "out").exists()
    # --out may not be the run, in it or around it, even with --force
    for inside in (run_dir, run_dir / "final", run_dir / "export", run_dir.parent):
        with pytest.raises(ExportError, match="inside it or around it"):
            export(run_dir, inside, force=True)
    assert not (run_dir / "export").exists()
    # --force replaces an earlier export, and nothing else
    with pytest.raises(ExportError, match=r"holds more than an export \(notes.txt\)"):
        export(run_dir, tmp_path / "taken", force=True)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "params.json").write_text("{}")  # an earlier export's file
    killed = tmp_path / f".earlier.export-{2**22 + 7}"  # staging left by a killed export (no such process)
    killed.mkdir()
    assert export(run_dir, earlier, force=True) == earlier
    assert sorted(p.name for p in earlier.iterdir()) == ["consolidated.safetensors", "params.json", "tekken.json"]
    assert json.loads((earlier / "params.json").read_text())["dim"] > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left behind


def test_voxtral_mini_3b_names_shapes_and_rotary_layout_round_trip(tmp_path):
    """The real 3B's key names and shapes (one layer per tower): every weight goes out under a
    name the published readers know and comes back bit for bit, q/k through the rotary layout."""
    cfg = compose_config(
        ["model=voxtral-mini-3b", "model.random_init=true", "+model.text_config.num_hidden_layers=1"]
        + ["+model.audio_config.num_hidden_layers=1"]
    )
    config = random_config(cfg.model)
    with torch.device("meta"):  # shapes only
        shapes = {name: t.shape for name, t in VoxtralForConditionalGeneration(config).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    # bf16 as the 3B is published: random bit patterns of finite positive numbers (fast to draw)
    random = lambda shape: torch.randint(0, 2**14, shape, generator=generator, dtype=torch.int16).view(torch.bfloat16)  # noqa: E731
    state = {name: random(shape) for name, shape in shapes.items()}
    exported = to_mistral(state, config)
    assert exported["layers.0.attention.wq.weight"].shape == (4096, 3072)  # 32 heads x 128, not 3072 wide
    assert exported["layers.0.attention.wk.weight"].shape == (1024, 3072)  # 8 KV heads
    assert "mm_whisper_embeddings.whisper_encoder.transformer.layers.0.attention.wk.bias" not in exported
    back_config = mistral_reference.config_from_params(json.loads(json.dumps(params(config))))
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size"):
        assert getattr(back_config.text_config, key) == getattr(config.text_config, key)
    assert back_config.audio_config.intermediate_size == 5120 and back_config.audio_config.num_mel_bins == 128
    (tmp_path / "m").mkdir()
    save_file(exported, str(tmp_path / "m" / "consolidated.safetensors"))
    back = mistral_reference.transformers_weights(tmp_path / "m", back_config)
    saved_names = {
        name.replace("model.language_model.", "language_model.model.")
        .replace("lm_head.", "language_model.lm_head.")
        .replace("model.audio_tower.", "audio_tower.")
        .replace("model.multi_modal_projector.", "multi_modal_projector."): name
        for name in state
    }
    assert set(back) == set(saved_names)
    for saved, name in saved_names.items():
        if name != "model.audio_tower.embed_positions.weight":
            assert torch.equal(back[saved], state[name]), name

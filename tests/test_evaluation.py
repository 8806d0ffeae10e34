"""WER/CER, the eval callback, merge, transcribe, the model card and the Hub push dry run."""

import json
import os
import shutil
import subprocess
import sys

import jiwer
import pytest
import torch
import yaml

from tests.conftest import ROOT, SAMPLE, compose_config, read_trackio
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.example import Example
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.merge import merge
from voxtral_exp.model.modeling import build_model, load_trained
from voxtral_exp.model.processor import load_processor
from voxtral_exp.model.tokens import PAD_TOKEN_ID
from voxtral_exp.run.model_card import REPO
from voxtral_exp.training.collator import TranscriptionCollator
from voxtral_exp.training.evaluation import (
    error_rates,
    evaluate_wer,
    generation_budget,
    text_normalizer,
)


def test_wer_and_cer_against_hand_computed_values():
    refs = ["the cat sat", "hello world"]
    hyps = ["the cat sit", "hello"]
    rates = error_rates(refs, hyps)
    assert rates["wer"] == pytest.approx(2 / 5)  # one substitution, one deletion, five words
    assert rates["cer"] == pytest.approx(7 / 22)  # "a"->"i", then " world" (6 chars) deleted
    assert error_rates(["same words"], ["same words"]) == {"wer": 0.0, "cer": 0.0}


def test_normalizers():
    assert text_normalizer("basic")("Hello, World!  ") == "hello world"
    assert text_normalizer("none")(" Hello,  World! ") == "Hello, World!"
    assert text_normalizer("whisper_english")("Mr. Smith won't go.") == "mister smith will not go"


def test_generation_budget_follows_the_longest_reference():
    featurizer = Featurizer(load_processor(None), "offline")
    examples, _ = read_manifest(SAMPLE / "eval.jsonl")
    longest = max(len(featurizer.target(e.text)) for e in examples)  # transcript tokens + EOS
    assert generation_budget(featurizer, examples, None) == longest + 8  # short clips: at least 8 spare
    assert generation_budget(featurizer, examples, None, cap=5) == 5  # dataset.filters.max_label_tokens
    assert generation_budget(featurizer, examples, 17) == 17  # evaluation.max_new_tokens wins
    long = [Example(examples[0].audio, " ".join(["seven hundred"] * 60))]  # a 30 s clip's worth of words
    n = len(featurizer.target(long[0].text))
    assert generation_budget(featurizer, long, None) == n + n // 4 > 100


def test_hypotheses_cut_by_the_budget_are_counted():
    cfg = compose_config(["model=tiny", "hardware=cpu", "evaluation.max_new_tokens=3"])
    model = build_model(cfg.model, torch.float32, seed=0)
    torch.nn.init.zeros_(model.model.language_model.norm.weight)  # every logit 0: token 0, never EOS
    featurizer = Featurizer(load_processor(None), "offline")
    examples, _ = read_manifest(SAMPLE / "eval.jsonl")
    metrics, predictions = evaluate_wer(model, featurizer, examples[:3], cfg.evaluation)
    assert metrics["eval_truncated"] == 3 and all(p["truncated"] for p in predictions)


def test_wer_callback_reaches_trainer_state_trackio_and_results(lora_run):
    run_dir, trackio_dir = lora_run
    state = json.loads((run_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    wer_steps = [e["step"] for e in state["log_history"] if "eval_wer" in e]
    assert wer_steps == [3, 6]
    assert state["best_metric"] is not None  # best model chosen on eval_wer
    logs = read_trackio(trackio_dir)[0]["logs"]
    assert {row["step"] for row in logs if "eval/wer" in row} >= {3, 6}
    # per language, as flat metrics: during training (the callback) and at the end (with the eval loss)
    languages = ("en", "fr", "de", "es")
    assert {row["step"] for row in logs if all(f"eval/wer_{lang}" in row for lang in languages)} >= {3, 6}
    (final,) = [row for row in logs if "final/max_new_tokens" in row]
    assert all(f"final/wer_{lang}" in final and f"final/cer_{lang}" in final for lang in languages)
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert set(results["per_language"]) == {"en", "fr", "de", "es"}
    assert final["final/wer_fr"] == pytest.approx(results["per_language"]["fr"]["wer"])
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    normalize = text_normalizer("basic")  # the run's evaluation.normalizer
    refs, hyps = [normalize(p["reference"]) for p in predictions], [normalize(p["hypothesis"]) for p in predictions]
    assert results["eval_wer"] == pytest.approx(jiwer.wer(refs, hyps))  # the WER of the saved transcripts
    assert results["eval_cer"] == pytest.approx(jiwer.cer(refs, hyps))
    assert results["eval_truncated"] == sum(p["truncated"] for p in predictions)
    assert results["eval_max_new_tokens"] == 4
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 9
    assert {"reference", "hypothesis", "wer", "cer", "language", "origin"} <= predictions[0].keys()


def test_merged_model_equals_base_plus_adapter(lora_run, tmp_path):
    run_dir, _ = lora_run
    merged_dir = merge(run_dir, tmp_path / "merged")
    adapter = load_trained(str(run_dir / "final")).eval()
    merged = load_trained(str(merged_dir)).eval()
    assert not hasattr(merged, "peft_config")
    featurizer = Featurizer(load_processor(str(merged_dir)), "offline")
    examples = read_manifest(SAMPLE / "eval.jsonl")[0][:2]
    batch = TranscriptionCollator(PAD_TOKEN_ID)([featurizer(e) for e in examples])
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, adapter(**batch).logits, rtol=1e-4, atol=1e-4)


def test_transcribe_cli_on_a_run_directory(lora_run):
    run_dir, _ = lora_run
    files = [SAMPLE / "audio" / "en_00.flac", SAMPLE / "audio" / "fr_01.flac"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxtral_exp.transcribe",
            str(run_dir),
            *map(str, files),
            "--language",
            "en",
            "--max-new-tokens",
            "4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in files]


def test_serving_prompts_in_the_language_the_run_trained_with_and_says_so(lora_run, tmp_path, caplog, capsys):
    from voxtral_exp.inference import load, trained_language
    from voxtral_exp.transcribe import main as transcribe

    run_dir = tmp_path / "run"  # the shared run, as if trained with dataset.language=French
    shutil.copytree(lora_run[0] / "final", run_dir / "final")
    saved = yaml.safe_load((lora_run[0] / "resolved_config.yaml").read_text())
    saved["dataset"]["language"] = "French"
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(saved))
    merged = merge(run_dir)  # final/merged
    clip = SAMPLE / "audio" / "fr_01.flac"
    audio = load_audio(str(clip))
    for source in (run_dir, merged):
        caplog.clear()
        with caplog.at_level("INFO"):
            _, featurizer = load(source)
        assert featurizer.default_language == "fr", source
        assert torch.equal(featurizer.prompt(audio, None)["prompt_ids"], featurizer.prompt(audio, "fr")["prompt_ids"])
        assert f"Language <dataset.language>: clips given no language are prompted lang:fr, as {run_dir} trained" in (
            caplog.text
        )
    assert trained_language(str(lora_run[0] / "final")) is None  # rows in four languages: the model detects it
    capsys.readouterr()
    assert transcribe([str(run_dir / "final"), str(clip), "--max-new-tokens", "2"]) == 0
    assert "language: fr, the one the run trained with; --language overrides it" in capsys.readouterr().err
    # rows that all carry one language (the quickstart's digits, lang:en): that one
    saved["dataset"]["language"] = None
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(saved))
    (run_dir / "eval_results.json").write_text(json.dumps({"per_language": {"en": {"wer": 0.1, "n": 9}}}))
    assert trained_language(str(run_dir / "final")) == "en"


def test_model_card_holds_the_runs_real_numbers_and_working_code(lora_run, tmp_path):
    run_dir, _ = lora_run
    card = (run_dir / "final" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    results = json.loads((run_dir / "eval_results.json").read_text())
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"wer": round(results["eval_wer"], 4), "cer": round(results["eval_cer"], 4)}
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "automatic-speech-recognition"
    assert f"| all | {results['eval_wer']:.4f} | {results['eval_cer']:.4f} | 9 |" in card
    assert "r=4" not in card and "r=8, alpha=32" in card
    train = json.loads((run_dir / "train_results.json").read_text())
    assert f"{train['parameters_trainable']:,} of {train['parameters_total']:,}" in card
    # the usage code in the card runs as written against this final/
    code = card.split("```python\n")[1].split("```")[0]
    code = code.replace(REPO, str(run_dir / "final")).replace("speech.wav", str(SAMPLE / "audio" / "en_00.flac"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MISSING" not in proc.stdout + proc.stderr  # every weight was found


def test_push_dry_run_lists_final_and_needs_no_network(lora_run):
    run_dir, _ = lora_run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_NeverPrintedToken"}
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.push", str(run_dir), "--repo-id", "someone/voxtral-tiny", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = [line.strip() for line in proc.stdout.splitlines()[1:]]
    final = run_dir / "final"
    expected = sorted(
        str(p.relative_to(final)) for p in final.rglob("*") if p.is_file() and p.name != "training_args.bin"
    )
    assert listed == expected and (final / "training_args.bin").is_file()  # the model files, not the training pickle
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tekken.json"} <= set(listed)
    assert "hf_NeverPrintedToken" not in proc.stdout + proc.stderr

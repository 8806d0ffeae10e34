"""`python train.py` end to end on the tiny model: it learns, records, saves, tracks."""

import fcntl
import json
import math
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import (
    FAST,
    FULL_RUN,
    LORA_RUN,
    ROOT,
    SAMPLE,
    compose_config,
    losses,
    read_jsonl,
    read_trackio,
    run_train,
)
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.inference import transcribe
from voxtral_exp.model.modeling import build_model, load_trained
from voxtral_exp.model.processor import load_processor
from voxtral_exp.run.model_card import REPO


def test_training_loss_falls(full_run):
    per_step = [loss for _, loss in losses(full_run[0])]
    assert len(per_step) == 30
    start, end = np.mean(per_step[:3]), np.mean(per_step[-3:])
    assert end < start - 1.0, (start, end)


def test_run_directory_holds_the_whole_record(full_run):
    run_dir = full_run[0]
    for name in (
        ".hydra/config.yaml",
        "resolved_config.yaml",
        "run.json",
        "train_results.json",
        "eval_results.json",
        "predictions.jsonl",
        "train.log",
    ):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-15", "checkpoint-30"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed"
    assert "method=full" in run["overrides"] and run["git"]["commit"] is not None
    assert run["packages"]["transformers"] and run["start_time"] <= run["end_time"]
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["paths"]["output_dir"] == str(run_dir)  # no ${...} left
    assert resolved["trainer"]["max_steps"] == 30 and resolved["hardware"]["device"] == "cpu"
    evaluation = json.loads((run_dir / "eval_results.json").read_text())
    assert {"eval_loss", "eval_wer", "eval_cer", "per_language"} <= evaluation.keys()
    assert set(evaluation["per_language"]) == {"en", "fr", "de", "es"}
    assert len(read_jsonl(run_dir / "predictions.jsonl")) == 9
    train_results = json.loads((run_dir / "train_results.json").read_text())
    assert train_results["parameters_trainable"] < train_results["parameters_total"]


def test_final_model_reloads_and_transcribes_as_in_the_run(full_run):
    run_dir = full_run[0]
    model = load_trained(str(run_dir / "final"))
    featurizer = Featurizer(load_processor(str(run_dir / "final")), "offline")
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    audios = [load_audio(str(SAMPLE / row["audio_path"])) for row in read_jsonl(SAMPLE / "eval.jsonl")]
    texts = transcribe(model, featurizer, audios, [p["language"] for p in predictions], max_new_tokens=8)
    assert texts == [p["hypothesis"] for p in predictions]  # the reloaded model is the one evaluated


def test_full_method_leaves_the_frozen_audio_tower_unchanged(full_run):
    trained = load_trained(str(full_run[0] / "final")).state_dict()
    initial = build_model(compose_config(["model=tiny"]).model, torch.float32, seed=42).state_dict()
    tower = [k for k in trained if k.startswith("model.audio_tower.")]
    assert tower and all(torch.equal(trained[k], initial[k]) for k in tower)
    lm = [k for k in trained if k.startswith("model.language_model.layers.")]
    assert any(not torch.equal(trained[k], initial[k]) for k in lm)


def test_trackio_holds_one_run_with_config_and_losses(full_run):
    run_dir, trackio_dir, _ = full_run
    runs = read_trackio(trackio_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run["name"] == "full-run"
    assert run["config"]["method"]["name"] == "full" and run["config"]["trainer"]["max_steps"] == 30
    assert run["config"]["run_dir"] == str(run_dir) and run["config"]["git"]["commit"]
    tracked = [row["train/loss"] for row in run["logs"] if "train/loss" in row]
    assert len(tracked) == 30
    # perplexity beside every eval loss; trackio's own system metrics (CPU here; GPU on a GPU)
    evals = [row for row in run["logs"] if "eval/loss" in row]
    assert [row["step"] for row in evals] == [15, 30]  # once per evaluation: no jump at the end
    final = [row for row in run["logs"] if any(key.startswith("final/") for key in row)]
    assert {key for row in final for key in row} >= {"final/loss", "final/perplexity", "final/wer", "final/cer"}
    assert sum("final/loss" in row for row in final) == sum("final/wer" in row for row in final) == 1
    assert all(row["eval/perplexity"] == pytest.approx(math.exp(row["eval/loss"])) for row in evals)
    assert run["system"] and any(key.startswith("cpu/") for key in run["system"][0])


def test_progress_is_a_bar_on_a_terminal_and_log_lines_elsewhere(full_run, tmp_path, trackio_dir):
    piped = full_run[2].stdout + full_run[2].stderr  # output to a pipe (CI, SLURM): log lines with ETA
    assert re.search(r"Progress <step 15/30 \(50%\), 0:00:\d\d elapsed, ETA 0:00:\d\d>", piped)
    assert not re.search(r"\d+/30 \[", piped)  # no training bar
    assert piped.count("* Run finished") == 1  # trackio's run is finished once
    leader, follower = pty.openpty()  # a terminal (120 columns): tqdm's bar with its ETA
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *FAST,
            "trainer.max_steps=4",
            "evaluation.wer_at_end=false",
            "tracking.enabled=false",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=ROOT,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TRACKIO_DIR": str(trackio_dir), "HF_HUB_OFFLINE": "1"},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=300) == 0, output[-3000:]
    text = output.decode(errors="replace")
    assert re.search(r"\d/4 \[\d\d:\d\d<\d\d:\d\d", text), text[-3000:]  # the bar: steps [elapsed<ETA
    assert "Progress <step" not in text


def test_lora_saves_language_model_adapters_and_the_projector_only_and_reloads(lora_run):
    final = lora_run[0] / "final"
    adapter = load_file(final / "adapter_model.safetensors")
    adapters = [k for k in adapter if "lora_" in k]
    assert adapters and all(".language_model." in k for k in adapters)  # none in the audio encoder
    projector = [k for k in adapter if "multi_modal_projector" in k]  # method.train_projector=true
    assert projector and sorted(adapters + projector) == sorted(adapter)
    model = load_trained(str(final))
    initial = build_model(compose_config(["model=tiny"]).model, torch.float32, seed=42).state_dict()
    base = model.get_base_model().state_dict()
    for name, weight in initial.items():  # the frozen base came back intact (LoRA and peft wrap some layers)
        if "multi_modal_projector" in name:
            original = name.replace("multi_modal_projector.", "multi_modal_projector.original_module.")
            trained = name.replace("multi_modal_projector.", "multi_modal_projector.modules_to_save.default.")
            assert torch.equal(base[original], weight) and not torch.equal(base[trained], weight), name
            continue
        key = name if name in base else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(base[key], weight), name
    featurizer = Featurizer(load_processor(str(final)), "offline")
    assert len(transcribe(model, featurizer, [np.zeros(8000, np.float32)], [None], max_new_tokens=2)) == 1


def test_bad_config_fails_before_loading_anything(tmp_path, trackio_dir):
    # save_steps=8 is no multiple of eval_steps=50 (load_best_model_at_end): TrainingArguments'
    # own rule, found by validation with voxtral_exp's own checks
    proc = run_train(
        [
            "hardware=cpu",
            "method.r=0",
            "trainer.learning_rate=-1",
            "trainer.save_steps=8",
            f"hydra.run.dir={tmp_path}/run",
        ],
        trackio_dir,
        check=False,
    )
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "method.r=0" in output and "trainer.learning_rate=-1" in output
    proc = run_train(
        ["hardware=cpu", "trainer.save_steps=8", f"hydra.run.dir={tmp_path}/run2"], trackio_dir, check=False
    )
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "trainer.load_best_model_at_end requires the saving steps to be a round multiple" in output
    assert "Traceback" not in output  # a config mistake gets its message, not a stack trace
    for run in ("run", "run2"):
        assert json.loads((tmp_path / run / "run.json").read_text())["status"] == "failed"
        assert not (tmp_path / run / "data_report.json").exists()  # the data was never read
        assert not (tmp_path / run / "checkpoints").exists()


def card_transcript(final: Path, audio: Path) -> str:
    """What the usage code in final/README.md prints for ``audio``, run as written (offline)."""
    card = (final / "README.md").read_text()
    code = card.split("```python\n")[1].split("```")[0]
    code = code.replace(REPO, str(final)).replace("speech.wav", str(audio))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MISSING" not in proc.stdout + proc.stderr  # every weight was found
    return proc.stdout.strip()


def test_model_card_of_a_full_fine_tune(full_run):
    run_dir = full_run[0]
    card = (run_dir / "final" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "base_model" not in meta  # random weights: no base
    assert "full fine-tuning of the language model (projector trained: True, audio encoder frozen: True)" in card
    assert "PeftModel" not in card
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert f"| all | {results['eval_wer']:.4f} | {results['eval_cer']:.4f} | 9 |" in card
    # the card's plain-transformers code transcribes exactly as voxtral_exp's own command does
    clip = SAMPLE / "audio" / "en_03.flac"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxtral_exp.transcribe",
            str(run_dir),
            str(clip),
            "--language",
            "en",
            "--max-new-tokens",
            "128",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert card_transcript(run_dir / "final", clip) == proc.stdout.split("\t", 1)[1].strip()


def test_early_stopping_and_final_is_the_best_checkpoint(tmp_path, trackio_dir):
    """greater_is_better=true on eval_loss makes the *first* evaluation the best while the loss
    falls: patience 2 then stops at step 6 of 20, and final/ holds checkpoint-2, not the last."""
    run_dir = tmp_path / "run"
    run_train(
        [
            *FAST,
            "method=full",
            "trainer.learning_rate=3e-3",
            "trainer.max_steps=20",
            "trainer.eval_steps=2",
            "trainer.save_steps=2",
            "trainer.greater_is_better=true",
            "evaluation.early_stopping_patience=2",
            "evaluation.wer_at_end=false",
            "tracking.enabled=false",
            f"hydra.run.dir={run_dir}",
        ],
        trackio_dir,
    )
    state = json.loads((run_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    eval_losses = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e]
    assert len(eval_losses) == 3 and eval_losses[0] > eval_losses[1] > eval_losses[2]  # falling: step 2 is "best"
    assert state["global_step"] == 6 and state["best_model_checkpoint"].endswith("checkpoint-2")
    assert json.loads((run_dir / "train_results.json").read_text())["global_step"] == 6
    final = load_file(run_dir / "final" / "model.safetensors")
    best = load_file(run_dir / "checkpoints" / "checkpoint-2" / "model.safetensors")
    last = load_file(run_dir / "checkpoints" / "checkpoint-6" / "model.safetensors")
    name = next(k for k in final if "language_model" in k and "layers.0" in k and k.endswith("q_proj.weight"))
    matching = [k for k in best if k.endswith(name.split("language_model.", 1)[1])]
    assert len(matching) == 1  # checkpoints keep the model's own parameter names, final/ the standard ones
    assert torch.equal(final[name], best[matching[0]]) and not torch.equal(final[name], last[matching[0]])


@pytest.mark.slow  # a train.py run; tests/test_model.py checks the same equality per batch in-process; `make test-all` runs it
def test_logits_over_every_position_train_the_same_as_label_only_logits(lora_run, tmp_path, trackio_dir):
    """speed.label_only_logits=false (the plain path) end to end: the same per-step losses."""
    run_dir = tmp_path / "run"
    overrides = [*LORA_RUN, "speed.label_only_logits=false", "evaluation.wer_at_end=false", "tracking.enabled=false"]
    overrides += ["evaluation.wer_during_training=false", "trainer.metric_for_best_model=eval_loss"]
    run_train([*overrides, f"hydra.run.dir={run_dir}"], trackio_dir)
    assert dict(losses(run_dir)) == pytest.approx(dict(losses(lora_run[0])), rel=1e-4)


def test_run_json_tells_where_training_stands(full_run):
    progress = json.loads((full_run[0] / "run.json").read_text())["progress"]
    assert (progress["step"], progress["max_steps"]) == (30, 30) and progress["eta_s"] == 0
    assert progress["elapsed_s"] > 0


def test_the_first_log_line_names_the_model_and_the_preset_that_chose_it(tmp_path, trackio_dir):
    # dataset=granary pairs real data with the real model: no download here, so the run stops at
    # Granary's metadata, after its first line has said which model it was about to train
    proc = run_train(["dataset=granary", "hardware=cpu", f"hydra.run.dir={tmp_path}/run"], trackio_dir, check=False)
    assert proc.returncode == 1
    first = (tmp_path / "run" / "train.log").read_text().splitlines()[0]
    assert "model=voxtral-mini-3b (mistralai/Voxtral-Mini-3B-2507; chosen by dataset=granary" in first
    assert "put model=... after it to choose another" in first


def test_per_step_losses_are_pinned(full_run):
    """The 30 losses of a fixed tiny CPU run, to 1e-5. A change that moves them on purpose
    regenerates tests/pinned_losses.json with `make pin-losses` (and says why)."""
    pinned = json.loads((ROOT / "tests" / "pinned_losses.json").read_text())
    assert pinned["overrides"] == FULL_RUN  # the pinned numbers are of this very run
    observed = {str(step): loss for step, loss in losses(full_run[0])}
    assert observed == pytest.approx(pinned["losses"], rel=1e-5, abs=1e-5)


@pytest.mark.gpu
def test_a_bf16_lora_run_on_the_gpu_trains_and_reloads(tmp_path, trackio_dir):
    run_dir = tmp_path / "run"
    overrides = [*(o for o in FAST if o != "hardware=cpu"), "hardware=gpu", "method=lora", "trainer.max_steps=4"]
    run_train([*overrides, "trainer.save_steps=4", "trainer.eval_steps=4", f"hydra.run.dir={run_dir}"], trackio_dir)
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["trainer"]["bf16"] is True and resolved["hardware"]["device"] == "cuda"
    assert len(losses(run_dir)) == 4 and all(math.isfinite(loss) for _, loss in losses(run_dir))
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()

"""Safe by default: nothing already written is lost, nothing silently ignored, and every bad input
gets a clear error naming its file and line, key or field, and what to do (no traceback)."""

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.conftest import FAST, ROOT, SAMPLE, compose_config, lock_held_elsewhere, run_train
from tests.data_fixtures import granary_folder, sample_rows, tone, write_jsonl
from voxtral_exp.data.example import Example
from voxtral_exp.data.filters import DataError, ExampleChecker, NoDataError
from voxtral_exp.data.manifest import ManifestError, read_manifest
from voxtral_exp.data.sources import load_data
from voxtral_exp.errors import run_command
from voxtral_exp.run.config import ConfigError, validate
from voxtral_exp.training.checkpoints import unsound

QUICK = [*FAST, "method=lora", "trainer.max_steps=2", "trainer.save_steps=2", "trainer.eval_steps=2"]
QUICK += ["tracking.enabled=false", "evaluation.max_new_tokens=2"]


def problems(*overrides: str) -> list[str]:
    try:
        validate(compose_config(["hardware=cpu", *overrides]))
    except ConfigError as e:
        return e.problems
    return []


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **kwargs.pop("env", {})}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, **kwargs)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- runs that overwrite or pretend ------------------------------------------------------------


def test_a_directory_holding_a_run_is_refused_and_overwrite_moves_it_aside_whole(lora_run, tmp_path, trackio_dir):
    finished = tmp_path / "run"
    shutil.copytree(lora_run[0], finished)
    before = files_of(finished)
    proc = run_train([*QUICK, f"hydra.run.dir={finished}"], trackio_dir, check=False)
    assert proc.returncode != 0 and "already holds a run" in proc.stderr and "overwrite=true" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert files_of(finished) == before  # nothing written: .hydra/, run.json (still completed), checkpoints

    run_train([*QUICK, f"hydra.run.dir={finished}", "overwrite=true"], trackio_dir)
    (aside,) = tmp_path.glob("run.replaced-*")
    assert files_of(aside) == before  # the old run, whole, beside the new one
    assert sorted(p.name for p in (finished / "checkpoints").iterdir()) == ["checkpoint-2"]  # only the new run's
    assert json.loads((finished / "run.json").read_text())["status"] == "completed"


def test_a_sweep_into_a_directory_holding_an_earlier_sweep_is_refused(tmp_path, trackio_dir):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "run.json").write_text('{"status": "completed"}')
    proc = run_train(["-m", *QUICK, "method.r=4,8", f"hydra.sweep.dir={sweep}"], trackio_dir, check=False)
    assert proc.returncode != 0 and "sweep directory" in proc.stderr and "already holds a sweep" in proc.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["0"] and (sweep / "0" / "run.json").read_text().startswith("{")


def test_a_run_directory_in_use_is_refused_even_quoted_before_anything_is_written(tmp_path, trackio_dir):
    busy = tmp_path / "busy run"  # a space: the value must be quoted, as the web app quotes it
    busy.mkdir()
    with lock_held_elsewhere(busy) as pid:
        proc = run_train([*QUICK, f"hydra.run.dir='{busy}'"], trackio_dir, check=False)
    assert proc.returncode != 0 and f"is in use: PID {pid}" in proc.stderr
    assert sorted(p.name for p in busy.iterdir()) == [".lock"]  # no .hydra/, no log


def test_a_run_directory_that_cannot_be_written_is_named_without_a_traceback(tmp_path, trackio_dir):
    (tmp_path / "notes").write_text("a file where a folder is expected")
    run_dir = tmp_path / "notes" / "run"  # fails for root too, which ignores permission bits
    proc = run_train([*QUICK, f"hydra.run.dir={run_dir}"], trackio_dir, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: hydra.run.dir={run_dir}: cannot create or write the run directory (Not a directory); nothing was "
        "written. Choose a folder you can write to (hydra.run.dir=DIR)"
    )
    assert (tmp_path / "notes").read_text() == "a file where a folder is expected"


@pytest.mark.parametrize(
    "key, instead",
    [
        ("resume_from_checkpoint=true", "use resume=true"),
        ("output_dir=/tmp/x", "use hydra.run.dir=DIR"),
        ("run_name=x", "use tracking.name=NAME"),
        ("report_to=wandb", "use tracking.*"),
        ("do_train=true", "Trainer ignores it"),
        ("do_eval=true", "Trainer ignores do_eval"),
        ("do_predict=true", "Trainer ignores do_predict"),
        ("push_to_hub=true", "python -m voxtral_exp.push"),
    ],
)
def test_trainer_fields_the_project_sets_or_trainer_ignores_are_refused(key, instead):
    (problem,) = problems(f"+trainer.{key}")
    assert problem.startswith(f"trainer.{key.split('=')[0]}: set by voxtral_exp or ignored by Trainer")
    assert instead in problem


def test_nothing_to_train_on_stops_before_the_model_loads_and_check_says_so(tmp_path, trackio_dir, capsys):
    for filters, empty, length in (  # a run set by epochs (once transformers' traceback), and one by steps
        (["dataset.filters.max_duration=0.5"], "train", "trainer.num_train_epochs=1"),
        (["dataset.filters.min_duration=25"], "eval", "trainer.max_steps=3"),
    ):
        run_dir = tmp_path / f"run-{empty}-{length[-1]}"
        proc = run_train([*FAST, *filters, length, f"hydra.run.dir={run_dir}"], trackio_dir, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "Traceback" not in output, output[-2000:]
        assert f"no {empty} example left" in output and "dataset.filters.min_duration / max_duration" in output
        assert "usable (dropped: " in output  # the counts
        assert not (run_dir / "final").exists() and not (run_dir / "checkpoints").exists()
        assert "Model <" not in output  # stopped before the model was built
        assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    from voxtral_exp.check import main as check  # its command line is run in tests/test_data.py

    capsys.readouterr()
    assert check(["model=tiny", "dataset.filters.max_duration=0.5"]) == 1
    assert "error: no usable train example" in capsys.readouterr().out


def test_a_small_granary_config_says_how_many_rows_it_has_and_which_key_to_lower(tmp_path):
    folder, audio_root = granary_folder(tmp_path / "granary")
    for streaming in (False, True):
        cfg = compose_config(
            [
                "dataset=granary",
                "model=tiny",
                "hardware=cpu",
                f"dataset.path={folder}",
                "dataset.languages=[en]",
                "dataset.source=voxpopuli",
                f"dataset.audio_root={audio_root}",
                f"dataset.streaming={streaming}",
            ]
        )
        with pytest.raises(NoDataError) as e:
            load_data(cfg.dataset, 0)
        message = str(e.value)
        rows = len((folder / "en" / "voxpopuli" / "en_asr.jsonl").read_text().splitlines())
        assert f"{folder}[en_voxpopuli/asr]: all of its {rows} rows went to eval" in message
        assert (
            f"dataset.max_eval_samples holds out the first 200 rows. Lower dataset.max_eval_samples (below {rows})"
            in message
        )


def test_ctrl_c_says_which_checkpoint_the_run_goes_on_from(tmp_path):
    from voxtral_exp.training.checkpoints import interrupted_message

    assert interrupted_message(tmp_path).startswith(f"Interrupted before its first checkpoint: {tmp_path} has nothing")
    for step in (2, 4):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text('{"global_step": 1}')
    (tmp_path / "checkpoints" / "checkpoint-6").mkdir()  # its save was cut short: never named
    message = interrupted_message(tmp_path)
    assert message.endswith(f"`python -m voxtral_exp.resume {tmp_path}` continues it from checkpoint-4")
    assert (tmp_path / "checkpoints" / "checkpoint-6").is_dir()  # only resume renames what it skips
    (tmp_path / "run.json").write_text(json.dumps({"status": "completed"}))  # Ctrl-C during the last cleanup
    assert (
        interrupted_message(tmp_path)
        == f"Interrupted after {tmp_path} had completed: it is whole, there is nothing to resume"
    )


def test_a_stray_folder_named_like_a_checkpoint_is_moved_out_of_the_rotation_whole(tmp_path, caplog):
    """The Trainer's checkpoint rotation deletes whatever matches checkpoint-*: a user's folder
    named so is renamed stray-<name> (contents kept) by the process that resumes, never chosen."""
    from voxtral_exp.training.checkpoints import checkpoint_to_resume, interrupted_message

    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "checkpoint-4").mkdir(parents=True)
    (checkpoints / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (checkpoints / "checkpoint-x").mkdir()  # a user's copy, a note: no step in its name
    (checkpoints / "checkpoint-x" / "notes.txt").write_text("keep me")
    (checkpoints / "checkpoint-9.bak").write_text("a file")
    (checkpoints / "checkpoint-\uff17").mkdir()  # a full-width digit is no step either
    assert interrupted_message(tmp_path).endswith("continues it from checkpoint-4")  # only reads
    assert (checkpoints / "checkpoint-x").is_dir()
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(True, tmp_path, is_main_process=True) == str(checkpoints / "checkpoint-4")
    assert "renamed stray-checkpoint-x, out of the Trainer's rotation" in caplog.text
    assert (checkpoints / "stray-checkpoint-x" / "notes.txt").read_text() == "keep me"
    assert (checkpoints / "stray-checkpoint-9.bak").read_text() == "a file"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-4"]


def test_run_json_tells_how_the_last_attempt_ended_and_keeps_each_attempts_error(tmp_path):
    from voxtral_exp.run.record import RunRecord

    RunRecord(tmp_path, []).finish("failed", error="OutOfMemoryError: CUDA out of memory")
    resumed = RunRecord(tmp_path, [])  # python -m voxtral_exp.resume: a second attempt
    running = json.loads((tmp_path / "run.json").read_text())
    assert running["status"] == "running" and "error" not in running and "end_time" not in running
    resumed.finish("completed", metrics={"eval_loss": 1.5})
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "completed" and "error" not in run and run["metrics"] == {"eval_loss": 1.5}
    assert [a["status"] for a in run["attempts"]] == ["failed", "completed"]
    assert run["attempts"][0]["error"] == "OutOfMemoryError: CUDA out of memory"  # the history keeps it


def test_a_checkpoint_cut_short_is_never_chosen(tmp_path):
    good = tmp_path / "checkpoint-4"
    good.mkdir()
    (good / "trainer_state.json").write_text('{"global_step": 4}')
    sf.write(good / "unused.wav", tone(0.1, 16000), 16000)  # other files are not judged
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(64, 64)}, str(good / "model.safetensors"))
    torch.save({"state": torch.zeros(64)}, good / "optimizer.pt")
    assert unsound(good) is None
    weights = (good / "model.safetensors").read_bytes()
    (good / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert unsound(good).startswith("model.safetensors is cut short")
    (good / "model.safetensors").write_bytes(weights)
    optimizer = (good / "optimizer.pt").read_bytes()
    (good / "optimizer.pt").write_bytes(optimizer[:-100])
    assert unsound(good) == "optimizer.pt is cut short (no zip directory at its end)"


# --- clear errors instead of tracebacks or silence ---------------------------------------------


def test_a_value_of_the_wrong_type_is_named_with_its_key():
    assert problems("trainer.learning_rate=abc") == ["trainer.learning_rate='abc': expected a number"]
    assert problems("method.alpha=abc")[0].startswith("method.alpha='abc': must be a number > 0")


def test_a_run_length_of_no_steps_is_refused_saying_what_to_use():
    epochs = "or -1 to train for trainer.num_train_epochs epochs"
    assert problems("trainer.max_steps=0") == [
        f"trainer.max_steps=0 trains nothing: set a number of steps (>= 1), {epochs}"
    ]  # Trainer would train one step, whatever trainer.num_train_epochs says
    assert problems("trainer.max_steps=null") == [
        f"trainer.max_steps=null: expected a number of steps (>= 1), {epochs}"
    ]
    assert problems("trainer.max_steps=-1", "trainer.num_train_epochs=2") == []
    for steps in ("0.5", "-5"):  # 0.5 failed once the model had loaded; -5 trained epochs without a word
        assert problems(f"trainer.max_steps={steps}") == [
            f"trainer.max_steps={steps}: expected a whole number of steps (>= 1), {epochs}"
        ]


def test_training_arguments_rules_name_the_config_keys_they_are_about():
    (problem,) = problems("trainer.save_steps=8", "trainer.eval_steps=50")
    assert problem.endswith("Change trainer.save_steps, trainer.eval_steps")


def test_a_hub_dataset_offline_and_a_missing_model_are_clear_errors(tmp_path, trackio_dir):
    proc = run_train([*FAST, "dataset=hub", f"hydra.run.dir={tmp_path / 'run'}"], trackio_dir, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output
    assert "dataset.path=openslr/librispeech_asr: cannot reach it on the Hugging Face Hub" in output
    from voxtral_exp.transcribe import main as transcribe

    clip = str(SAMPLE / "audio" / "en_00.flac")
    for model, message in (
        ("/nonexistent", "/nonexistent: no such run directory or model folder (nor a Hub id, which reads owner/name)"),
        (
            str(tmp_path),
            f"{tmp_path} holds no model (config.json or adapter_config.json): give a run directory, its final/, "
            "a merged folder or a Hub id",
        ),
    ):  # as `python -m voxtral_exp.transcribe MODEL CLIP` runs it: SystemExit(str) prints it alone and exits 1
        with pytest.raises(SystemExit) as stopped:
            run_command(lambda model=model: transcribe([model, clip]))
        assert stopped.value.code == f"error: {message}"


def test_manifests_in_other_encodings_name_the_file_and_line_and_a_bom_is_read(tmp_path):
    rows = sample_rows("train")[:2]
    rows[1] = {**rows[1], "text": "déjà vu"}
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (tmp_path / "bom.jsonl").write_bytes(text.encode("utf-8-sig"))
    examples, bad = read_manifest(tmp_path / "bom.jsonl")
    assert not bad and [e.text for e in examples] == [rows[0]["text"], "déjà vu"]
    (tmp_path / "latin1.jsonl").write_bytes(text.encode("latin-1"))
    examples, bad = read_manifest(tmp_path / "latin1.jsonl")
    column = text.splitlines()[1].encode("latin-1").index(b"\xe9") + 1
    assert len(examples) == 1 and bad == [
        f"{tmp_path / 'latin1.jsonl'}:2: not UTF-8 text (byte 0xe9 at column {column}; Latin-1 or Windows-1252?): "
        "save the manifest as UTF-8, e.g. `iconv -f latin1 -t utf-8 latin1.jsonl > fixed.jsonl`"
    ]
    (tmp_path / "powershell.jsonl").write_bytes(text.encode("utf-16"))
    with pytest.raises(ManifestError, match=r"powershell.jsonl is UTF-16 \(as Windows PowerShell's `>` writes it\)"):
        read_manifest(tmp_path / "powershell.jsonl")
    with pytest.raises(ManifestError, match="is a folder: give the JSONL file"):
        read_manifest(tmp_path)
    assert problems(f"dataset.train_manifest={tmp_path}") == [
        f"dataset.train_manifest={tmp_path} is a folder: give the JSONL manifest file in it"
    ]


def test_settings_that_would_be_ignored_are_refused_with_the_closest_key():
    assert problems("model.name_or_path=/nonexistent") == [
        "model.name_or_path=/nonexistent names a local folder, but model.random_init=true builds random weights and "
        "would never read it (model=tiny): add model.random_init=false to load it, or drop it"
    ]
    (problem,) = problems("+dataset.filters.max_duraton=5")
    assert (
        problem.startswith("dataset.filters.max_duraton: no such key")
        and "did you mean dataset.filters.max_duration?" in problem
    )
    (problem,) = problems("+trainer.save_stepz=8")
    assert "did you mean trainer.save_steps?" in problem
    (problem,) = problems("+training.encoder_cache=/tmp/c")  # the old name of speed.*
    assert "did you mean speed.encoder_cache?" in problem
    assert problems("+dataset.streaming=true") != []  # a key of another dataset option (hub), not jsonl's


def test_check_filters_a_three_hour_file_by_its_header_without_decoding_it(tmp_path):
    path = tmp_path / "three_hours.flac"  # silence: FLAC keeps three hours in a few hundred kB
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, format="FLAC") as f:
        for _ in range(180):
            f.write(np.zeros(60 * 16000, dtype=np.int16))
    checker = ExampleChecker(compose_config(["hardware=cpu"]).dataset.filters, decode=True)  # as `check` runs it
    tracemalloc.start()
    found = checker(Example(str(path), "three hours of speech", "en", origin="long.jsonl:1"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found.reason == "too_long" and found.message.startswith("10800.00s > dataset.filters.max_duration=30.0")
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated: the samples (691 MB as float32) were decoded"


def test_transcribe_names_each_bad_file_and_still_transcribes_the_good_ones(lora_run, tmp_path):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF this is no audio")
    good = [SAMPLE / "audio" / "en_00.flac", SAMPLE / "audio" / "fr_01.flac"]
    bad = [tmp_path, tmp_path / "missing.flac", tmp_path / "garbage.wav"]
    args = [str(lora_run[0]), str(good[0]), *map(str, bad), str(good[1]), "--max-new-tokens", "3"]
    proc = run([sys.executable, "-m", "voxtral_exp.transcribe", *args])
    assert proc.returncode == 1
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [str(g) for g in good]
    assert f"error: {tmp_path} is a folder: give audio files" in proc.stderr
    assert f"error: {tmp_path / 'missing.flac'} does not exist" in proc.stderr
    assert f"error: cannot decode audio {tmp_path / 'garbage.wav'}" in proc.stderr
    assert "3 of 5 file(s) could not be read" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_rows_of_every_split_are_reported_in_one_pass(tmp_path):
    train, evaluation = sample_rows("train")[:3], sample_rows("eval")[:3]
    train[1] = {**train[1], "audio_path": str(tmp_path / "gone.flac")}
    evaluation[2] = {**evaluation[2], "text": "  "}
    cfg = compose_config(
        [
            "hardware=cpu",
            f"dataset.train_manifest={write_jsonl(tmp_path / 'train.jsonl', train)}",
            f"dataset.eval_manifest={write_jsonl(tmp_path / 'eval.jsonl', evaluation)}",
        ]
    )
    with pytest.raises(DataError) as e:
        load_data(cfg.dataset, 0)
    message = str(e.value)
    assert "1 bad example(s) in the train data" in message and f"{tmp_path / 'train.jsonl'}:2: audio file" in message
    assert (
        "1 bad example(s) in the eval data" in message and f"{tmp_path / 'eval.jsonl'}:3: empty transcript" in message
    )


def test_yaml_of_the_saved_run_is_read_literally(tmp_path):
    """A value saved with `${` in it (an escaped interpolation) stays a string when the run is
    reproduced or resumed: it never becomes an interpolation again."""
    from voxtral_exp.run.record import load_run_config

    saved = {
        "dataset": {"name": "jsonl", "train_manifest": "/data/${oc.env:HF_TOKEN}.jsonl"},
        "method": {"name": "lora"},
        "model": {"name": "tiny"},
        "speed": {"encoder_cache": None},
        "paths": {"root_dir": "/work"},
    }
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(saved))
    cfg = load_run_config(tmp_path)
    assert cfg.dataset.train_manifest == "/data/${oc.env:HF_TOKEN}.jsonl"

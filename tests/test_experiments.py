"""Research workflows around runs: sweeps, Optuna, reproduce, resume after SIGKILL, torchrun,
submitit, and secrets that never reach an output."""

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import FAST, ROOT, losses, read_trackio, run_torchrun, run_train, wait_for
from voxtral_exp.model.modeling import load_trained

QUICK = [*FAST, "trainer.max_steps=3", "trainer.eval_steps=3", "trainer.save_steps=3", "evaluation.max_new_tokens=2"]


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/run.json"))


def test_sweep_leaves_one_complete_directory_per_job_and_a_summary(tmp_path, trackio_dir):
    sweep = tmp_path / "sweep"
    run_train(
        ["-m", *QUICK, "method=lora", "method.r=4,8", "trainer.learning_rate=1e-3,3e-3", f"hydra.sweep.dir={sweep}"],
        trackio_dir,
    )
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    for job in jobs:
        assert json.loads((job / "run.json").read_text())["status"] == "completed"
        assert (job / "final" / "adapter_model.safetensors").is_file() and (job / "eval_results.json").is_file()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert {(int(r["method.r"]), float(r["trainer.learning_rate"])) for r in rows} == {
        (4, 1e-3),
        (4, 3e-3),
        (8, 1e-3),
        (8, 3e-3),
    }
    assert [float(r["eval_loss"]) for r in rows] == sorted(float(r["eval_loss"]) for r in rows)
    markdown = (sweep / "summary.md").read_text()
    assert "| rank | job | status | method.r | trainer.learning_rate |" in markdown
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"
    runs = read_trackio(trackio_dir)
    assert len(runs) == 4
    groups = {r["config"]["tracking"]["group"] for r in runs}
    assert groups == {f"sweep-{sweep.parent.name}_{sweep.name}"}


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, trackio_dir):
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", *QUICK, "trainer.learning_rate=-1,1e-3", f"hydra.sweep.dir={sweep}"], trackio_dir)
    assert proc.returncode == 0
    statuses = {j.name: json.loads((j / "run.json").read_text())["status"] for j in job_dirs(sweep)}
    assert statuses == {"0": "failed", "1": "completed"}
    assert "trainer.learning_rate=-1" in json.loads((sweep / "0" / "run.json").read_text())["error"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("1", "completed"), ("0", "failed")]


def test_optuna_study_is_stored_in_the_sweep_and_continues(tmp_path, trackio_dir):
    sweep = tmp_path / "sweep"
    args = ["hparams_search=optuna", *QUICK, "evaluation.wer_at_end=false", f"hydra.sweep.dir={sweep}"]
    run_train([*args, "hydra.sweeper.n_trials=3"], trackio_dir)
    database = sweep / "optuna.db"

    def trials():
        with sqlite3.connect(database) as db:
            return db.execute("select number, state from trials order by number").fetchall()

    assert trials() == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    run_train([*args, "hydra.sweeper.n_trials=1"], trackio_dir)  # continue the same study
    assert trials()[-1] == (3, "COMPLETE")
    assert sorted(j.name for j in job_dirs(sweep)) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert len(list(csv.DictReader((sweep / "summary.csv").open()))) == 4


def save_in_the_layout_before_2026_11_28(run_dir: Path) -> None:
    """Rewrite a run's resolved_config.yaml as voxtral_exp saved it until 2026-11-28: the levers and
    resume under `training.*` (group_by_chunks; no cache budget), no `dataset.reader` (its name was
    its reader), no `model.audio_tokens` / `encoder_window` / `encoder_positions` (the run trained
    with `as_built` positions, as such runs did), no `paths.cache_dir`."""
    path = run_dir / "resolved_config.yaml"
    saved = yaml.safe_load(path.read_text())
    speed = saved.pop("speed")
    speed["group_by_chunks"] = speed.pop("group_by_length")
    del speed["encoder_cache_budget_gb"]
    saved["training"] = {**speed, "resume_from_checkpoint": saved.pop("resume")}
    assert saved["model"].pop("encoder_positions") == "as_built"
    del saved["dataset"]["reader"], saved["model"]["audio_tokens"], saved["model"]["encoder_window"]
    del saved["paths"]["cache_dir"]
    path.write_text(yaml.safe_dump(saved, sort_keys=False))


def test_reproduce_gives_the_same_per_step_losses_from_todays_and_older_saved_configs(tmp_path, trackio_dir):
    original = tmp_path / "original"
    run_train(
        [
            *FAST,
            "method=lora",
            "method.dropout=0.1",
            "trainer.max_steps=6",
            "trainer.save_steps=6",
            "trainer.eval_steps=6",
            "trainer.dataloader_num_workers=2",
            "evaluation.wer_at_end=false",
            "model.encoder_positions=as_built",  # as a run before 2026-12 trained
            f"hydra.run.dir={original}",
        ],
        trackio_dir,
    )
    copy = tmp_path / "copy"
    save_in_the_layout_before_2026_11_28(original)
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.reproduce", str(original), "--out", str(copy)],
        cwd=ROOT,
        env={**os.environ, "TRACKIO_DIR": str(trackio_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(losses(original)) == 6
    assert losses(copy) == losses(original)
    assert json.loads((copy / "run.json").read_text())["status"] == "completed"
    assert "uncommitted changes" not in proc.stderr or "dirty=True" in proc.stderr


def test_reproduce_warns_about_changed_packages(tmp_path, trackio_dir):
    from voxtral_exp.reproduce import differences

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"git": {"commit": "0" * 40, "dirty": False}, "packages": {"torch": "0.0.1"}}
    (run_dir / "run.json").write_text(json.dumps(record))
    found = differences(run_dir)
    assert any("git commit differs" in d for d in found)
    assert any(d.startswith("package torch: original 0.0.1, now") for d in found)


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, trackio_dir):
    args = [
        *FAST,
        "method=full",
        "trainer.learning_rate=3e-3",
        "trainer.max_steps=24",
        "trainer.save_steps=6",
        "trainer.eval_steps=6",
        "trainer.save_total_limit=10",
        "evaluation.wer_at_end=false",
    ]
    # two run folders of the same name: the default trackio names (<experiment>/run) collide
    straight = tmp_path / "straight" / "run"
    run_train([*args, f"hydra.run.dir={straight}"], trackio_dir)

    killed = tmp_path / "killed" / "run"
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(killed / "checkpoints" / "checkpoint-12" / "trainer_state.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"
    # a save cut short by the kill: weights written, trainer state not yet
    partial = killed / "checkpoints" / "checkpoint-18"
    partial.mkdir(exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"half a file")
    (partial / "trainer_state.json").unlink(missing_ok=True)
    # and the newest complete one damaged on disk: its weights cut short
    weights = killed / "checkpoints" / "checkpoint-12" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    resumed = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.resume", str(killed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-18: trainer_state.json unreadable" in resumed.stderr
    assert "checkpoint-12: model.safetensors is cut short" in resumed.stderr  # so it resumed from checkpoint-6
    assert "Traceback" not in resumed.stderr
    assert losses(killed) == losses(straight)
    a, b = load_trained(str(straight / "final")).state_dict(), load_trained(str(killed / "final")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    run = json.loads((killed / "run.json").read_text())
    assert run["status"] == "completed" and len(run["attempts"]) == 2
    tracked = {r["name"]: r for r in read_trackio(trackio_dir)}
    # one trackio run each, the second named apart (saying so); the resume continued its own
    assert set(tracked) == {"default/run", "default/run-2"} and run["trackio"]["name"] == "default/run-2"
    assert "trackio run 'default/run' belongs to " + str(straight) in (killed / "train.log").read_text()
    assert [tracked[name]["config"]["run_dir"] for name in ("default/run", "default/run-2")] == [
        str(straight),
        str(killed),
    ]
    for name in tracked:  # each step once: the killed run's history replayed from checkpoint-6, then trained; the
        steps = [row["step"] for row in tracked[name]["logs"] if "train/loss" in row]  # other run's untouched
        assert steps == list(range(1, 25)), name


def test_torchrun_two_processes_make_one_run_and_share_the_encoder_cache_fill(tmp_path, trackio_dir):
    """One torchrun run proves both (each took a torchrun run of its own): two ranks with different
    ${now:} directories end up in one run directory and one trackio run, and they fill the encoder
    cache together, each computing its half."""
    # %f gives each rank a different ${now:} directory: the run must still end up in one
    outputs, cache = tmp_path / "outputs", tmp_path / "cache"
    run_torchrun(
        [
            *QUICK,
            "method=full",
            "trainer.per_device_train_batch_size=2",
            "evaluation.wer_at_end=true",
            f"speed.encoder_cache={cache}",
            f"hydra.run.dir={outputs}/" + "${now:%H-%M-%S-%f}",
        ],
        tmp_path,
        trackio_dir,
    )
    runs = list(outputs.iterdir())
    assert len(runs) == 1
    run_dir = runs[0]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert (run_dir / "final" / "model.safetensors").is_file() and (run_dir / "eval_results.json").is_file()
    state = json.loads((run_dir / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 2 and state["global_step"] == 3
    assert "[voxtral_exp.training.recipe][INFO] Run" in (run_dir / "train.log").read_text()
    assert len(read_trackio(trackio_dir)) == 1

    report = json.loads((run_dir / "data_report.json").read_text())
    examples = report["train"]["kept"]
    # one entry per training and eval clip, none half-written
    assert len(list(cache.glob("*/*/*.pt"))) == examples + report["eval"]["kept"]
    filled_by_rank0 = re.search(
        r"Encoder cache <speed.encoder_cache>: (\d+) new entries", (run_dir / "train.log").read_text()
    )
    assert int(filled_by_rank0[1]) == (examples + 1) // 2  # rank 1 computed the other half


def test_submitit_local_sweep(tmp_path, trackio_dir):
    sweep = tmp_path / "sweep"
    run_train(["-m", "launcher=local", *QUICK, "method.r=4,8", f"hydra.sweep.dir={sweep}"], trackio_dir)
    assert [j.name for j in job_dirs(sweep)] == ["0", "1"]
    assert all(json.loads((j / "run.json").read_text())["status"] == "completed" for j in job_dirs(sweep))
    assert len(list(csv.DictReader((sweep / "summary.csv").open()))) == 2


FAKE_TOKEN = "hf_PlantedFakeTokenThatMustNeverLeak123"


@pytest.mark.parametrize("where", ["environment", "command line"])
def test_a_token_never_reaches_any_output(tmp_path, trackio_dir, where):
    run_dir = tmp_path / "run"
    args = [*QUICK, f"hydra.run.dir={run_dir}"]
    if where == "command line":
        args.append(f"+hf_token={FAKE_TOKEN}")
    proc = run_train(args, trackio_dir, check=False, env={"HF_TOKEN": FAKE_TOKEN, "HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN})
    if where == "environment":
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        assert proc.returncode != 0 and "secrets never go in the config" in proc.stdout + proc.stderr
    assert FAKE_TOKEN not in proc.stdout + proc.stderr
    for folder in (run_dir, trackio_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_sweep_plot_reads_at_a_glance(tmp_path):
    """Log axis for the learning rate, plain tick labels (no +1.17e1 offset), the best job marked."""
    import matplotlib

    matplotlib.use("Agg")
    from voxtral_exp.run.sweep_summary import plot, summarize

    jobs = {"0": ("1e-4", 8, 11.7413), "1": ("3e-4", 8, 11.7402), "2": ("1e-3", 16, 11.7391), "3": ("3e-3", 16, None)}
    for job, (lr, r, loss) in jobs.items():
        folder = tmp_path / job
        folder.mkdir()
        run = {
            "status": "completed" if loss else "failed",
            "overrides": [f"trainer.learning_rate={lr}", f"method.r={r}"],
            "start_time": "2026-11-27T10:00:00+00:00",
            "end_time": "2026-11-27T10:01:00+00:00",
        }
        (folder / "run.json").write_text(json.dumps(run))
        if loss:
            (folder / "eval_results.json").write_text(json.dumps({"eval_loss": loss}))
    rows = summarize(tmp_path)
    assert [r["job"] for r in rows] == ["2", "1", "0", "3"]  # best first, the failed job last
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    fig = plot(rows, ["method.r", "trainer.learning_rate"], "eval_loss")
    fig.canvas.draw()
    r_axis, lr_axis = fig.axes
    assert lr_axis.get_xscale() == "log" and r_axis.get_xscale() == "log"  # 8 -> 16 doubles
    assert [t.get_text() for t in lr_axis.get_xticklabels()] == ["0.0001", "0.0003", "0.001"]
    for ax in (r_axis, lr_axis):
        assert ax.yaxis.get_offset_text().get_text() == ""
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels and all(label.replace(".", "").replace("−", "").isdigit() for label in labels), labels
        legend = ax.get_legend().get_texts()[0].get_text()
        assert legend == "best: job 2 (11.7391)"

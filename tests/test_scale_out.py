"""Scale-out proven on CPU processes (torchrun over gloo, submitit's local executor), and runs
that cannot be corrupted: FSDP against DDP, FSDP resume after SIGKILL, sharded WER, SLURM-style
multi-task jobs, the run-directory lock, and resume of finished or nearly finished runs."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
from transformers import VoxtralForConditionalGeneration

from tests.conftest import FAST, ROOT, compose_config, losses, read_trackio, run_torchrun, run_train, wait_for
from voxtral_exp.run.config import ConfigError, validate
from voxtral_exp.run.record import check_free
from voxtral_exp.training.evaluation import text_normalizer

# full fine-tuning of the tiny model, 6 steps of 2 per rank, a checkpoint every 3
DIST = [
    *FAST,
    "method=full",
    "trainer.learning_rate=3e-3",
    "trainer.max_steps=6",
    "trainer.save_steps=3",
    "trainer.eval_steps=3",
    "trainer.save_total_limit=5",
    "trainer.load_best_model_at_end=false",
    "evaluation.max_new_tokens=4",
]


@pytest.fixture(scope="session")  # a shared run (conftest.SHARED_RUNS): built once per worker
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    run_torchrun([*DIST, f"hydra.run.dir={tmp / 'run'}"], tmp, tmp / "trackio")
    return tmp / "run"


def test_fsdp_preset_matches_ddp_resumes_after_sigkill_and_saves_a_plain_model(ddp_run, tmp_path, trackio_dir):
    killed = tmp_path / "fsdp"
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir), "TMPDIR": str(tmp_path)}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.Popen(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "train.py"),
            *DIST,
            "trainer=fsdp",
            f"hydra.run.dir={killed}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(killed / "checkpoints" / "checkpoint-3" / "trainer_state.json", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()
    assert not (killed / "final" / "model.safetensors").exists()
    run_torchrun([str(killed)], tmp_path, trackio_dir, program=["-m", "voxtral_exp.resume"])

    ddp, fsdp = dict(losses(ddp_run)), dict(losses(killed))
    assert sorted(fsdp) == sorted(ddp) == list(range(1, 7))
    assert all(abs(fsdp[step] - ddp[step]) < 1e-3 for step in ddp), (fsdp, ddp)  # sharding changes no loss
    # final/ is a plain checkpoint: from_pretrained and the transcribe command load it
    model = VoxtralForConditionalGeneration.from_pretrained(killed / "final")
    assert sum(p.numel() for p in model.parameters()) > 4_000_000
    clip = ROOT / "data" / "sample" / "audio" / "en_00.flac"
    out = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.transcribe", str(killed), str(clip), "--max-new-tokens", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.startswith(f"{clip}\t"), out.stderr[-2000:]
    results = json.loads((killed / "eval_results.json").read_text())
    predictions = [json.loads(line) for line in (killed / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 9  # every eval clip, gathered from both ranks' shares
    normalize = text_normalizer("basic")
    refs, hyps = [normalize(p["reference"]) for p in predictions], [normalize(p["hypothesis"]) for p in predictions]
    assert results["eval_wer"] == pytest.approx(jiwer.wer(refs, hyps))  # the WER of the transcripts it saved
    assert json.loads((killed / "run.json").read_text())["status"] == "completed"


def test_lora_with_fsdp_is_refused_with_a_reason():
    # validation, in process: tests/test_train.py::test_bad_config_fails_before_loading_anything
    # proves that train.py turns what it finds into exit status 1 and these messages
    with pytest.raises(ConfigError) as error:
        validate(compose_config([*FAST, "method=lora", "trainer=fsdp"]))
    assert any(p.startswith("trainer=fsdp with method=lora is not supported") for p in error.value.problems)


@pytest.fixture(scope="session")  # a shared run (conftest.SHARED_RUNS): built once per worker
def one_process_eval(tmp_path_factory) -> dict:
    """tests/dist_eval.py's evaluation in one process: what two ranks must reproduce."""
    out = tmp_path_factory.mktemp("eval") / "one.json"
    alone = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "dist_eval.py"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    return json.loads(out.read_text())


# DDP's case is in `make test-all`: it runs the same sharded_generate and gather as FSDP's, which
# adds the sharded root; ddp_run and the SLURM-style job evaluate under DDP end to end
@pytest.mark.parametrize("fsdp", [pytest.param(False, marks=pytest.mark.slow), True])
def test_wer_is_sharded_across_ranks_and_equals_one_process(one_process_eval, tmp_path, fsdp):
    script = [str(ROOT / "tests" / "dist_eval.py")]
    args = [str(tmp_path / "two.json")] + (["--fsdp"] if fsdp else [])
    run_torchrun(args, tmp_path, tmp_path / "trackio", program=script)  # an FSDP hang would time out here
    one, two = one_process_eval, json.loads((tmp_path / "two.json").read_text())
    assert two["hypotheses"] == one["hypotheses"]  # each rank generated its share; gathered in order
    assert two["metrics"]["eval_wer"] == pytest.approx(one["metrics"]["eval_wer"])
    assert two["metrics"]["per_language"] == one["metrics"]["per_language"]


def test_slurm_style_job_of_two_tasks_is_one_distributed_run(ddp_run, tmp_path, trackio_dir):
    """launcher=local with tasks_per_node=2: what launcher=slurm does on a cluster node."""
    sweep = tmp_path / "sweep"
    run_train(
        [
            "-m",
            "launcher=local",
            "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.cpus_per_task=1",
            *DIST,
            f"hydra.sweep.dir={sweep}",
        ],
        trackio_dir,
    )
    jobs = sorted(p.parent for p in sweep.glob("*/run.json"))
    assert [j.name for j in jobs] == ["0"]  # one job, one run directory
    job = jobs[0]
    assert json.loads((job / "run.json").read_text())["status"] == "completed"
    assert (
        json.loads((job / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())["train_batch_size"] == 2
    )
    ours, torchrun = dict(losses(job)), dict(losses(ddp_run))
    assert sorted(ours) == sorted(torchrun) == list(range(1, 7))
    assert [ours[s] for s in ours] == pytest.approx([torchrun[s] for s in ours], abs=1e-5)  # as torchrun's 2 processes
    assert len(read_trackio(trackio_dir)) == 1  # one trackio run


def test_a_run_in_use_is_locked_a_killed_holder_frees_it_and_a_finished_run_is_left_alone(tmp_path, trackio_dir):
    run_dir = tmp_path / "run"
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir), "HF_HUB_OFFLINE": "1"}
    args = [*DIST, "trainer.max_steps=4", "trainer.save_steps=4", "trainer.eval_steps=4", f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(run_dir / ".lock", first)
    first.send_signal(signal.SIGSTOP)  # hold it while it holds the lock, however fast it trains
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_text()
    # a resume into the same directory is refused at once, naming the holder (a second train.py:
    # tests/test_safety.py::test_a_run_directory_in_use_is_refused_even_quoted_before_anything_is_written)
    resume = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.resume", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    holder = f"PID {first.pid} on host {socket.gethostname()}"
    assert resume.returncode != 0 and holder in resume.stderr + resume.stdout
    assert (run_dir / ".hydra" / "config.yaml").read_text() == hydra_config  # nothing of the run overwritten
    first.send_signal(signal.SIGCONT)

    # killed after its last checkpoint: its lock died with it; resume trains no further step
    wait_for(run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json", first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    resumed = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.resume", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (run_dir / "checkpoints" / "checkpoint-5").exists()
    assert json.loads((run_dir / "train_results.json").read_text())["global_step"] == 4
    assert (run_dir / "final" / "model.safetensors").is_file() and (run_dir / "eval_results.json").is_file()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    check_free(run_dir)  # the lock is released: a new process could take the directory
    steps = [row["step"] for row in read_trackio(trackio_dir)[0]["logs"] if "train/loss" in row]
    assert steps == sorted(set(steps))  # each step once on the dashboard

    # resuming a completed run says so and changes nothing
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    again = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.resume", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "nothing to resume, nothing changed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before

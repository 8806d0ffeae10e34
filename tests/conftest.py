"""Shared helpers: compose the real config, run the real train.py in a subprocess, the shared
runs and fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import voxtral_exp.run.config  # noqa: F401 - registers resolvers

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")
SAMPLE = ROOT / "data" / "sample"  # the bundled sample speech (en/fr/de/es sentences)

# Fast settings for the tiny model on CPU: a handful of steps, no long generation.
FAST = [
    "model=tiny",
    "hardware=cpu",
    "trainer.per_device_train_batch_size=2",
    "trainer.per_device_eval_batch_size=4",
    "trainer.dataloader_num_workers=0",
    "trainer.logging_steps=1",
    "evaluation.max_new_tokens=8",
    # the live audio path; the encoder cache (speed.encoder_cache=auto by default, which would
    # keep every test run's encoder output in the checkout's .cache) has its own tests
    "speed.encoder_cache=null",
]


# The two shared training runs (tests on the same xdist worker reuse them: `xdist_group` marks).
LORA_RUN = [
    *FAST,
    "method=lora",
    "method.train_projector=true",
    "trainer.learning_rate=3e-3",
    "trainer.max_steps=6",
    "trainer.eval_steps=3",
    "trainer.save_steps=3",
    "evaluation.wer_during_training=true",
    "evaluation.max_new_tokens=4",
    "trainer.metric_for_best_model=eval_wer",
]
FULL_RUN = [
    *FAST,
    "method=full",
    "trainer.learning_rate=3e-3",
    "trainer.warmup_steps=2",
    "trainer.max_steps=30",
    "trainer.eval_steps=15",
    "trainer.save_steps=15",
]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # one reduction order: the per-step losses are pinned to 1e-5


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


@pytest.fixture(scope="session")
def processor():
    """The offline Voxtral processor (the tiny models' tokenizer and 128-bin features)."""
    from voxtral_exp.model.processor import build_offline_processor

    return build_offline_processor()


@pytest.fixture(scope="session")
def featurizer(processor):
    from voxtral_exp.data.featurize import Featurizer

    return Featurizer(processor, "offline")


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run dir, trackio dir) of a 6-step LoRA run (projector trained, WER at every evaluation,
    best model by eval_wer) on the sample data."""
    tmp = tmp_path_factory.mktemp("lora")
    run_dir, trackio_dir = tmp / "run", tmp / "trackio"
    run_train([*LORA_RUN, f"hydra.run.dir={run_dir}"], trackio_dir)
    return run_dir, trackio_dir


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(run dir, trackio dir, process) of a 30-step full fine-tuning run on the sample data, one
    math thread (its losses are pinned: tests/pinned_losses.json)."""
    tmp = tmp_path_factory.mktemp("full")
    run_dir, trackio_dir = tmp / "run", tmp / "trackio"
    args = [*FULL_RUN, f"hydra.run.dir={run_dir}", "tracking.name=full-run", "tracking.system_metrics_interval=0.5"]
    proc = run_train(args, trackio_dir, env=ONE_THREAD)
    return run_dir, trackio_dir, proc


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 300, what: str = "") -> None:
    """Poll ``condition`` (a callable, or a path that must appear) until it holds; fail if
    ``proc`` ends first or the deadline passes."""
    check = condition if callable(condition) else condition.exists
    deadline = time.time() + timeout
    while not check():
        assert proc is None or proc.poll() is None, f"the process ended before {what or condition}"
        assert time.time() < deadline, f"gave up waiting for {what or condition} after {timeout:.0f} s"
        time.sleep(0.05)


HOLDER = """import signal, sys
from pathlib import Path
from voxtral_exp.run.record import RunLock
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C ends it, even where the suite ignores SIGINT
lock = RunLock(Path(sys.argv[1].partition("=")[2]))  # kept: a lock collected is released
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def lock_held_elsewhere(run_dir: Path):
    """Another process holds ``run_dir``'s run lock for the duration, as a training run would: a
    train.py of its own (`python train.py hydra.run.dir=RUN_DIR`, what the app's Stop checks for)
    that takes the lock and waits."""
    with tempfile.TemporaryDirectory() as scripts:
        (Path(scripts) / "train.py").write_text(HOLDER)
        holder = subprocess.Popen(
            [sys.executable, f"{scripts}/train.py", f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            yield holder.pid
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


@pytest.fixture
def trackio_dir(tmp_path: Path) -> Path:
    path = tmp_path / "trackio"
    path.mkdir()
    return path


def run_train(
    args: list[str], trackio_dir: Path, check: bool = True, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`python train.py ARGS` as a user runs it; TRACKIO_DIR isolates the tracking database."""
    full_env = {**os.environ, "TRACKIO_DIR": str(trackio_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


TRACKIO_DUMP = """
import json, sys
import trackio
from trackio.sqlite_storage import SQLiteStorage
project = sys.argv[1]
runs = []
for run in trackio.Api().runs(project):
    logs = SQLiteStorage.get_logs(project, run.name, run_id=run.id)
    system = SQLiteStorage.get_system_logs(project, run.name, run_id=run.id)
    runs.append({"name": run.name, "config": run.config,
                 "logs": [{k: v for k, v in row.items() if k != "timestamp"} for row in logs],
                 "system": system})
print(json.dumps(runs, default=str))
"""


def read_trackio(trackio_dir: Path, project: str = "voxtral_exp") -> list[dict]:
    """Every run of `project` in the trackio database under `trackio_dir`, read back through
    trackio's own API (in a subprocess: trackio reads TRACKIO_DIR at import time)."""
    proc = subprocess.run(
        [sys.executable, "-c", TRACKIO_DUMP, project],
        env={**os.environ, "TRACKIO_DIR": str(trackio_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) of every logged training step, from the newest checkpoint's trainer state."""
    last = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return [(e["step"], e["loss"]) for e in history if "loss" in e]


def run_torchrun(
    args: list[str], tmp_path: Path, trackio_dir: Path, program: list[str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 train.py ARGS` (or PROGRAM ARGS) on CPU (gloo);
    leaves nothing in TMPDIR."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", *(program or [str(ROOT / "train.py")]), *args],
        cwd=ROOT,
        env={**os.environ, "TRACKIO_DIR": str(trackio_dir), "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )  # --standalone: a free port, so xdist workers can run two at once
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("voxtral_exp_")]  # rank 1's Hydra dir
    return proc


# Each of these trains (or serves) once per worker: the tests that use one go to the same worker.
SHARED_RUNS = (
    "lora_run",
    "full_run",
    "ddp_run",
    "finished_run",
    "app",
    "one_process_eval",
    "clip_run",
    "tiny_whisper_runs",
)


# A wrapper: its part before `yield` runs before every plain implementation, xdist's included,
# which turns the xdist_group marks into node ids; after it, a group that did not reach the node
# ids stops the suite (it went unnoticed once: every worker trained each shared run again)
@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Tests that use a shared run go to one xdist worker (`--dist loadgroup`), which trains it
    once; `@pytest.mark.gpu` tests skip, saying why, where CUDA is not available."""
    import torch

    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        shared = [run for run in SHARED_RUNS if run in getattr(item, "fixturenames", ())]
        if len(shared) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses {shared}: a test goes to one xdist group only")
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
    result = yield
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        ungrouped = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if ungrouped:  # pytest 9.2 + xdist 3.8: the group never reached the node id (pyproject.toml pins pytest)
            raise pytest.UsageError(
                f"xdist did not group {ungrouped[0]}: each worker would train the shared runs again"
            )
    return result

"""Shared helpers: compose the real config, run the real train.py in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import voxtral_exp.run.config  # noqa: F401 - registers resolvers

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")

# Fast settings for the tiny model on CPU: a handful of steps, no long generation.
FAST = [
    "model=tiny",
    "hardware=cpu",
    "trainer.per_device_train_batch_size=2",
    "trainer.per_device_eval_batch_size=4",
    "trainer.dataloader_num_workers=0",
    "trainer.logging_steps=1",
    "evaluation.max_new_tokens=8",
]


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


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

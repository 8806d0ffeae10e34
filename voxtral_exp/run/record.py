"""What a run directory records about itself: resolved config, run.json, result files.

Every file is written atomically (temporary file + rename), so a crash or kill never leaves a
half-written record behind.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from voxtral_exp.errors import UserError
from voxtral_exp.files import write_atomic, write_json
from voxtral_exp.run.config import ROOT
from voxtral_exp.run.secrets import redact_argv

log = logging.getLogger(__name__)

PACKAGES = (
    "torch",
    "torchaudio",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "hydra-core",
    "omegaconf",
    "trackio",
    "mistral-common",
    "soundfile",
    "jiwer",
)


def write_resolved_config(run_dir: Path, resolved: dict) -> None:
    write_atomic(run_dir / "resolved_config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def git_state() -> dict[str, Any]:
    """Commit of the project checkout and whether it had uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware_info() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """`run.json`: who ran what, on which code and machine, and how it ended."""

    def __init__(self, run_dir: Path, overrides: list[str]):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "run.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data.update(
            {
                "status": "running",
                "command": redact_argv(sys.argv),
                "overrides": redact_argv(overrides),
                "run_dir": str(run_dir),
                "git": git_state(),
                "packages": package_versions(),
                "hardware": hardware_info(),
            }
        )
        self.data.setdefault("start_time", now())
        self.data.setdefault("attempts", [])
        self.data["attempts"].append({"start_time": now()})
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)

    def progress(self, progress: dict[str, Any]) -> None:
        """Where training stands (step, max_steps, elapsed_s, eta_s): the web app shows it."""
        self.data["progress"] = progress
        self.save()

    def finish(self, status: str, **extra: Any) -> None:
        self.data.update(status=status, end_time=now(), **extra)
        self.data["attempts"][-1].update(end_time=now(), status=status)
        self.save()


def final_dir(path: Path) -> Path:
    """A run directory's final/, or the folder itself if it already is one."""
    return path / "final" if (path / "final").is_dir() else path


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's saved, fully resolved config (not a re-resolution of Hydra's), in today's keys."""
    path = run_dir / "resolved_config.yaml"
    if not path.is_file():
        raise UserError(f"{path} not found: is {run_dir} a voxtral_exp run directory?")
    return OmegaConf.create(upgrade_saved_config(yaml.safe_load(path.read_text())))


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved by an earlier voxtral_exp, in today's vocabulary, so that its run still
    reproduces and resumes (what each old key meant is unchanged):
    - `training.*` (until 2026-11-28): the levers are `speed.*`, `training.resume_from_checkpoint`
      is `resume`;
    - no `dataset.reader` (until 2026-11-27): the dataset's name was its reader;
    - no `method.train_embeddings` (until 2026-11-27): embeddings trained (true).
    """
    saved = dict(saved)
    training = saved.pop("training", None)
    if training is not None:
        saved.setdefault("resume", training.pop("resume_from_checkpoint", None))
        saved.setdefault("speed", training)
    saved["dataset"] = {"reader": saved["dataset"]["name"], **saved["dataset"]}
    if saved["method"]["name"] == "full":
        saved["method"] = {"train_embeddings": True, **saved["method"]}
    return saved


def log_to(run_dir: Path) -> None:
    """Log to the console and append to <run dir>/train.log, as a Hydra run does."""
    run_dir.mkdir(parents=True, exist_ok=True)
    hydra_logging = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["job_logging"]
    formatter = logging.Formatter(hydra_logging["formatters"]["simple"]["format"])  # as train.py's log lines
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")):
        handler.setFormatter(formatter)
        root.addHandler(handler)


class RunInUseError(UserError, RuntimeError):
    """Another live process is training into the run directory."""


class RunLock:
    """`<run dir>/.lock`: the PID and host of the one process that trains into a run directory.

    A second train.py, resume or torchrun into the same directory is refused at once, naming
    the holder; a lock whose process is gone (same host, dead PID) is taken over with a warning.
    Created with O_EXCL, so two processes racing for it cannot both win.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, or None when it is free or stale (its process is gone)."""
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # being written this instant: held
            return {"pid": "?", "host": "?", "since": "?"}
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            return None
        return holder

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None:
                    raise RunInUseError(in_use_message(self.path, holder)) from None
                log.warning("Taking over the stale lock %s (%s: its process is gone)", self.path, self.path.read_text())
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            self.held = True
            return
        raise RunInUseError(f"could not take the lock {self.path}: other processes keep taking it")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def check_free(run_dir: Path) -> None:
    """Refuse at once when a live process holds ``run_dir`` (before Hydra writes into it)."""
    lock = RunLock(run_dir)
    holder = lock.holder()
    if holder is not None:
        raise RunInUseError(in_use_message(lock.path, holder))


def in_use_message(path: Path, holder: dict[str, Any]) -> str:
    return (
        f"run directory {path.parent} is in use: PID {holder.get('pid')} on host {holder.get('host')} has "
        f"trained into it since {holder.get('since')} ({path}). Wait for it to end or stop it; choose another "
        "hydra.run.dir for a new run. If that process died on another host, delete the lock file."
    )


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True  # someone else's process, or an unreadable PID: assume it lives
    return True

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
from filelock import FileLock, Timeout
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
        for ended in ("error", "end_time"):  # how an earlier attempt ended: its attempts entry keeps it
            self.data.pop(ended, None)
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

    @property
    def trackio_id(self) -> str | None:
        """The id of this run directory's trackio run (None before it has one)."""
        return self.data.get("trackio", {}).get("id")

    def tracked(self, project: str, name: str, run_id: str) -> None:
        """The trackio run this run directory writes into (the only one its resume touches)."""
        self.data["trackio"] = {"project": project, "name": name, "id": run_id}
        self.save()

    def progress(self, progress: dict[str, Any]) -> None:
        """Where training stands (step, max_steps, elapsed_s, eta_s): the web app shows it."""
        self.data["progress"] = progress
        self.save()

    def finish(self, status: str, error: str | None = None, **extra: Any) -> None:
        """How this attempt ended (completed, failed or interrupted, with its error)."""
        ended = {"end_time": now(), "status": status, **({"error": error} if error else {})}
        self.data.update(**ended, **extra)
        self.data["attempts"][-1].update(ended)
        self.save()


def final_dir(path: Path) -> Path:
    """A run directory's final/, or the folder itself if it already is one."""
    return path / "final" if (path / "final").is_dir() else path


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's saved, fully resolved config (not a re-resolution of Hydra's), in today's keys."""
    path = run_dir / "resolved_config.yaml"
    if not path.is_file():
        raise UserError(f"{path} not found: is {run_dir} a voxtral_exp run directory?")
    return OmegaConf.create(literal(upgrade_saved_config(yaml.safe_load(path.read_text()))))


def literal(value: Any) -> Any:
    """A resolved config's values as OmegaConf reads them literally: a `${` in a saved string (an
    interpolation that was escaped, or text) must not become an interpolation again."""
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value.replace("${", "\\${") if isinstance(value, str) else value


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved by an earlier voxtral_exp, in today's vocabulary, so that its run still
    reproduces and resumes (what each old key meant is unchanged):
    - `training.*` (until 2026-11-28): the levers are `speed.*`, `training.resume_from_checkpoint`
      is `resume`; `group_by_chunks` is `speed.group_by_length`; the encoder cache was off unless
      a folder was named;
    - no `model.audio_tokens` / `model.encoder_window` (until 2026-11-28): Voxtral's own, chunk;
    - no `model.encoder_positions` (until 2026-12-07): random-weight models kept the encoder
      positions as built (as_built: drawn at random, or the Whisper file's);
    - no `dataset.reader` (until 2026-11-27): the dataset's name was its reader;
    - no `method.train_embeddings` (until 2026-11-27): embeddings trained (true).
    """
    saved = dict(saved)
    training = saved.pop("training", None)
    if training is not None:
        saved.setdefault("resume", training.pop("resume_from_checkpoint", None))
        saved.setdefault("speed", training)
    speed = saved["speed"] = dict(saved["speed"])
    if "group_by_chunks" in speed:
        speed["group_by_length"] = speed.pop("group_by_chunks")
    speed.setdefault("encoder_cache_budget_gb", 50)
    if saved["model"].get("family") != "realtime":  # a Realtime model has no audio-token rule
        saved["model"] = {
            "audio_tokens": "chunk",
            "encoder_window": "chunk",
            "encoder_positions": "as_built",
            **saved["model"],
        }
    saved["paths"] = {"cache_dir": f"{saved['paths']['root_dir']}/.cache", **saved["paths"]}
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
    """`<run dir>/.lock`, held by the one process that trains into a run directory.

    An OS file lock (filelock: flock on Unix), so the kernel releases it when its process ends,
    however it ends: a killed run never leaves a stale lock. The file also says who holds it (PID,
    host, since), for the message that refuses a second train.py, resume or torchrun into the
    same directory. (filelock 4 leaves a held file's contents alone; the file stays after release.)
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._lock = FileLock(self.path, timeout=0)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunInUseError(in_use_message(self.path)) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": now()}
        with open(self.path, "r+", encoding="utf-8") as f:  # the locked file itself: no rename
            f.truncate()
            f.write(json.dumps(holder))

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


def check_free(run_dir: Path) -> None:
    """Refuse at once when a live process holds ``run_dir`` (before Hydra writes into it)."""
    if lock_holder(run_dir) is not None:
        raise RunInUseError(in_use_message(Path(run_dir) / ".lock"))


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """{"pid", "host", "since"} of the live process that trains into ``run_dir`` (a key is missing
    while it writes them), or None when none does."""
    path = Path(run_dir) / ".lock"
    if not path.exists():
        return None
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return read_holder(path)
    lock.release()
    return None


def read_holder(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except ValueError:  # being written this instant
        return {}


def in_use_message(path: Path) -> str:
    holder = read_holder(path)
    return (
        f"run directory {path.parent} is in use: PID {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"has trained into it since {holder.get('since', '?')} ({path}). Wait for it to end or stop it; choose "
        "another hydra.run.dir for a new run."
    )

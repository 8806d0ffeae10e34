"""The one training subprocess the app runs at a time, and what its run directory says about it.

Where a run stands comes from its own record, `run.json` (status: running, completed, failed
or interrupted; progress: step, max_steps, elapsed_s, eta_s at every logging step), never from
its log text; the log is only shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from voxtral_exp.app.command import ROOT
from voxtral_exp.errors import UserError
from voxtral_exp.run.record import lock_holder


class JobBusyError(UserError, RuntimeError):
    """A run is already in progress: the app runs one at a time."""


class TrainingJob:
    """The one training subprocess the app runs at a time (shared by every browser session); its
    output goes to <run dir>/app.log. ``run_dir`` starts as the last run an earlier app started
    (Workspace.last_app_run), so that a restarted app shows it, stops it if it still trains (its
    process outlives the app: it has a session of its own) and resumes it."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.process: subprocess.Popen | None = None
        self.run_dir = run_dir
        self.stop_sent = False

    def running(self) -> bool:
        """Whether this app's own training process is alive."""
        return self.process is not None and self.process.poll() is None

    def earlier_process(self) -> dict[str, Any] | None:
        """{"pid", "host", "since"} of a process that is not this app's and still trains into the
        run (started by an earlier app, or resumed from the command line), else None. Asked only
        when this app's own process is not alive, so that it never races that process for the lock."""
        if self.running() or self.run_dir is None:
            return None
        return lock_holder(self.run_dir)

    def start(self, command: list[str], run_dir: Path) -> None:
        """Run ``command`` for ``run_dir``; its output is added to the run's app.log (a resumed
        run's log keeps the attempts before it)."""
        if self.running():
            raise JobBusyError(f"a run is in progress ({self.run_dir}): stop it or wait for it")
        if holder := self.earlier_process():
            raise JobBusyError(
                f"{self.run_dir} is still training (PID {holder.get('pid', '?')}, started before this app): "
                "stop it or wait for it"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir, self.stop_sent = run_dir, False
        with open(run_dir / "app.log", "a", encoding="utf-8") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def stop(self) -> str:
        """Ctrl-C for the run (SIGINT to its process group; to the process itself for an earlier
        app's run on this machine, once checked to be that run's: trains_into), once: a second one
        would cut short its record and cleanup."""
        holder = self.earlier_process()
        if not self.running() and not (holder and holder.get("host") == socket.gethostname()):
            return "No run in progress."
        if self.stop_sent:
            return "Already stopping: the run is writing its record."
        if self.running():
            os.killpg(self.process.pid, signal.SIGINT)
        elif trains_into(holder.get("pid"), self.run_dir):
            os.kill(holder["pid"], signal.SIGINT)
        else:
            return (
                f"Not stopped: {self.run_dir}/.lock names PID {holder.get('pid', '?')}, which is not that run's "
                "train.py (a train.py or voxtral_exp.resume process holding the lock); nothing was signalled. "
                "Stop the run where it was started (Ctrl-C there)."
            )
        self.stop_sent = True
        return "Stopping (Ctrl-C sent): the run records itself as interrupted."

    def log(self) -> str:
        path = self.run_dir / "app.log" if self.run_dir else None
        return path.read_text(encoding="utf-8", errors="replace") if path and path.exists() else ""

    def record(self) -> dict[str, Any]:
        """The run's run.json ({} before train.py has written it)."""
        return read_record(self.run_dir) if self.run_dir else {}

    def progress(self) -> dict[str, Any] | None:
        """{"step", "max_steps", "elapsed_s", "eta_s"} at the last logging step, or None."""
        return self.record().get("progress")


def trains_into(pid: object, run_dir: Path) -> bool:
    """Whether ``pid`` is the process training into ``run_dir``: a python process running train.py
    or voxtral_exp.resume (its /proc command line) that holds the run's .lock open (its /proc file
    descriptors). Anyone can write a .lock naming any PID, and a PID is reused once its process
    ends, so Stop signals only a process that passes both checks, never a PID of 0 or below."""
    if type(pid) is not int or pid <= 0:  # 0 and -1 would signal a process group or every process
        return False
    proc, lock = Path(f"/proc/{pid}"), str((run_dir / ".lock").resolve())
    try:
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        fds = list((proc / "fd").iterdir())
    except OSError:  # gone, or another user's
        return False
    if program(argv) not in ("train.py", "voxtral_exp.resume"):
        return False
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(fd) == lock:
                return True
    return False


def program(argv: list[str]) -> str | None:
    """The file name of the script, or the module of `-m`, that a python command line runs."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None)
        if arg in ("-W", "-X", "--check-hash-based-pycs"):  # options followed by a value
            next(args, None)
        elif arg == "-c":
            return None
        elif not arg.startswith("-"):
            return Path(arg).name
    return None


def read_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (FileNotFoundError, ValueError):  # not written yet
        return {}


def run_results(run_dir: Path, n: int = 5) -> str:
    """A finished (or stopped) run in words: status, WER/CER, a few predictions."""
    run = read_record(run_dir)
    if not run:
        return f"{run_dir}: no run record yet"
    lines = [f"**Run** `{run_dir}`: {run.get('status')}"]
    results = run_dir / "eval_results.json"
    if results.exists():
        metrics = json.loads(results.read_text())
        if "eval_wer" in metrics:
            lines.append(
                f"**WER** {metrics['eval_wer']:.3f} · **CER** {metrics['eval_cer']:.3f} "
                f"· eval loss {metrics.get('eval_loss', float('nan')):.3f}"
            )
    predictions = run_dir / "predictions.jsonl"
    if predictions.exists():
        lines.append("| reference | hypothesis |\n| --- | --- |")
        for line in predictions.read_text(encoding="utf-8").splitlines()[:n]:
            p = json.loads(line)
            lines[-1] += f"\n| {p['reference']} | {p['hypothesis']} |"
    if run.get("status") in ("interrupted", "failed") or (run.get("status") == "running" and not lock_holder(run_dir)):
        lines.append(f"Resume it with Resume, or `python -m voxtral_exp.resume {run_dir}`")
    return "\n\n".join(lines)

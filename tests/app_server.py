"""The web app as a user (or anyone who reaches its port) meets it: a `python -m voxtral_exp.app`
subprocess on a free local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_app(
    args: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT, timeout: float = 120
) -> tuple[subprocess.Popen, int]:
    """Start the app on a free port with ``args`` (its output to ``log``); return once it answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # the checkout under test, whatever the working directory
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    with open(log, "w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "voxtral_exp.app", "--port", str(port), *args],
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + timeout
    while not answers(port):
        if app.poll() is not None or time.time() > deadline:
            stop_app(app)
            raise AssertionError(f"the app did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return app, port


def stop_app(app: subprocess.Popen) -> None:
    app.terminate()
    try:
        app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        app.kill()
        app.wait()

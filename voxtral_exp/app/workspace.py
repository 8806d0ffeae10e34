"""Where the app keeps its files: datasets/ for recorded clips, outputs/app/ for the runs it
starts; the runs it lists (to try or publish) are those under outputs/ and multirun/."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


def find_runs(workdir: Path) -> list[str]:
    """Run directories under outputs/ and multirun/ that hold a final model, newest first."""
    found = [
        p.parent
        for top in ("outputs", "multirun")
        for p in (workdir / top).glob("**/final")
        if (p / "config.json").exists() or (p / "adapter_config.json").exists()
    ]
    return [str(p) for p in sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)]


def next_run_dir(workdir: Path) -> Path:
    """A new run directory for a run the app starts: outputs/app/<date>_<time>."""
    return workdir / "outputs" / "app" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def default_dataset(workdir: Path) -> str:
    """The folder the Dataset tab records into unless the user names another."""
    return str(workdir / "datasets" / "my-speech")

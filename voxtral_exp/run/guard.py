"""Nothing already written is lost: a Hydra callback that checks a run's directory before Hydra
writes into it.

Hydra saves `.hydra/` and opens the log file in the run directory before the task starts, so the
check runs in ``on_run_start`` / ``on_multirun_start``, on the composed config (a quoted or
interpolated ``hydra.run.dir`` is resolved as Hydra will resolve it):
- a directory a live process trains into (its lock is held) is refused, naming the holder;
- a directory that holds a run (run.json, checkpoints or final/) is refused unless
  ``overwrite=true``, which first moves it aside to ``<dir>.replaced-<time>``, whole: two runs'
  files are never mixed. A stopped run is continued with ``python -m voxtral_exp.resume DIR``.
- a sweep directory that holds an earlier sweep's jobs is treated the same way (an Optuna study
  continued in its sweep directory numbers new trials past the old ones, and is let through);
- a directory that cannot be created or written (a file in its path, no permission, a read-only
  disk) is refused, naming it, instead of Hydra's traceback from its log file.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from voxtral_exp.errors import UserError
from voxtral_exp.run.record import check_free

log = logging.getLogger(__name__)
RUN_FILES = ("run.json", "checkpoints", "final")  # what makes a directory a run's


class RunDirectoryTaken(UserError, FileExistsError):
    """The run (or sweep) directory already holds a run."""


class RunDirectoryUnwritable(UserError, PermissionError):
    """The run (or sweep) directory cannot be created or written."""


def holds_a_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_FILES)


def claim(folder: Path, overwrite: bool, what: str = "run", resume_hint: bool = True) -> None:
    """Refuse ``folder`` if a live process trains there, it holds a run or it cannot be written;
    with ``overwrite``, move the old run aside (never mixing it with the new one)."""
    check_free(folder)
    taken = holds_a_run(folder) if what == "run" else any(holds_a_run(p) for p in folder.glob("*"))
    if taken and not overwrite:
        hint = f" continue it with `python -m voxtral_exp.resume {folder}`," if resume_hint else ""
        raise RunDirectoryTaken(
            f"{what} directory {folder} already holds a {what} ({', '.join(found(folder))}): nothing was "
            f"written. Choose another hydra.{what}.dir,{hint} or add overwrite=true to move the old one "
            f"aside to {folder}.replaced-<time> first"
        )
    if taken:
        aside = folder.with_name(f"{folder.name}.replaced-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}")
        folder.rename(aside)
        log.warning("overwrite=true: moved the %s that was in %s to %s", what, folder, aside)
    writable(folder, what)


def writable(folder: Path, what: str = "run") -> None:
    """Create ``folder`` and write a file in it, as Hydra is about to; refuse it, naming it, if that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise RunDirectoryUnwritable(
            f"hydra.{what}.dir={folder}: cannot create or write the {what} directory ({e.strerror}); nothing was "
            f"written. Choose a folder you can write to (hydra.{what}.dir=DIR)"
        ) from None


def found(folder: Path) -> list[str]:
    names = [name for name in RUN_FILES if (folder / name).exists()]
    return names or sorted(p.name for p in folder.glob("*") if holds_a_run(p))[:5]


class RunDirectoryGuard(Callback):
    """Registered in conf/hydra/default.yaml: runs before Hydra writes anything."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir", "")
        if "next_trial_dir" in str(subdir):  # an Optuna study continues past its old trials
            return
        self._claim(config, "sweep")

    @staticmethod
    def _claim(config: DictConfig, what: str) -> None:
        folder = Path(str(config.hydra[what].dir)).expanduser().absolute()
        try:
            claim(folder, bool(config.get("overwrite", False)), what, resume_hint=what == "run")
        except UserError as e:  # before Hydra's own error handling, which would add a traceback
            sys.exit(f"error: {e}")

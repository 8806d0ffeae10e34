"""The one folder the app reads and writes: datasets/ for recorded clips, outputs/app/ for the
runs it starts, and the runs it lists (to try or publish) under outputs/ and multirun/.

Every path a user gives is taken relative to the workspace (or as an absolute path in it) and
must still be inside it once `..` and symbolic links are resolved; each of its folder and file
names is made of letters, digits, '.', '_' and '-' and does not start with '.' or '-'.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from voxtral_exp.app.errors import FieldError
from voxtral_exp.run.artifacts import is_run

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # no spaces, quotes, $ { } = , ~; no hidden or option-like names
DEFAULT_DATASET = "datasets/my-speech"


@dataclass(frozen=True)
class Workspace:
    root: Path  # absolute, resolved

    @classmethod
    def create(cls, folder: Path) -> Workspace:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder.resolve())

    def path(self, value: str | None, field: str) -> Path:
        """The path ``value`` names in the workspace; refused, naming ``field``, unless it is inside."""
        text = (value or "").strip()
        if not text:
            raise FieldError(f"{field}: empty; name a folder or file in the workspace, e.g. {DEFAULT_DATASET}")
        path = (self.root / text).resolve()
        if not path.is_relative_to(self.root):
            raise FieldError(
                f"{field}: {text} is outside the workspace {self.root} (after resolving .. and symbolic links); "
                "the app reads and writes only there"
            )
        parts = path.relative_to(self.root).parts
        if not parts or not all(NAME.fullmatch(part) for part in parts):
            raise FieldError(
                f"{field}: {text} is not a name the app uses: give a path inside the workspace whose folder and file "
                "names are letters, digits, '.', '_' and '-', not starting with '.' or '-'"
            )
        return path

    def show(self, path: Path) -> str:
        """``path`` as the user types it: relative to the workspace."""
        return path.relative_to(self.root).as_posix()

    def runs(self) -> list[str]:
        """The finished runs under outputs/ and multirun/, newest first, as paths in the workspace."""
        found = {p.parent for top in ("outputs", "multirun") for p in (self.root / top).glob("**/final")}
        found = {p for p in found if p.resolve().is_relative_to(self.root) and is_run(p)}
        return [self.show(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]

    def run(self, value: str | None, field: str) -> Path:
        """The run directory ``value`` names (the run or its final/); refused unless it is a finished run."""
        path = self.path(value, field)
        run_dir = path.parent if path.name == "final" else path
        if not is_run(run_dir):
            raise FieldError(
                f"{field}: {value} is not a finished run (run.json, and final/ holding the model); pick one from the list"
            )
        return run_dir

    def last_app_run(self) -> Path | None:
        """The run under outputs/app/ (the app's) whose run.json changed last, or None: the one
        most recently active, which is the newest started unless an older one was resumed since."""
        changed = {}
        for record in (self.root / "outputs" / "app").glob("*/run.json"):
            if not record.resolve().is_relative_to(self.root):  # a symbolic link out of the workspace
                continue
            with contextlib.suppress(FileNotFoundError):  # a run deleted meanwhile
                changed[record.parent] = record.stat().st_mtime
        return max(changed, key=changed.get, default=None)

    def new_run_dir(self) -> Path:
        """A new folder for a run the app starts: outputs/app/<date>_<time>[-n]."""
        base = self.root / "outputs" / "app" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

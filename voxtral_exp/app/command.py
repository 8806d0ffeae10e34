"""The commands the app runs for the user, built from checked form values: `python train.py ...`
for the Train tab and `python -m voxtral_exp.push ...` for the Publish tab. No form value becomes
config syntax: choices and numbers are checked, text goes in as a quoted literal (fields.py)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from voxtral_exp.app.fields import choice, hub_id, integer, number, override
from voxtral_exp.app.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]  # the repository: train.py, conf/
MODELS = ["tiny", "tiny-whisper", "base-whisper", "voxtral-mini-3b", "voxtral-small-24b"]
METHODS = ["lora", "full"]
SOURCES = ["recorded folder", "manifest", "Hub dataset"]
DATA = "Folder, manifest or Hub id"  # the Train tab's data field, named in messages


@dataclass(frozen=True)
class TrainForm:
    """The Train tab's values, checked; ``data`` holds the dataset overrides."""

    model: str
    method: str
    data: tuple[str, ...]
    learning_rate: float
    steps: int
    r: int
    alpha: int
    batch_size: int

    @classmethod
    def parse(cls, workspace: Workspace, *form: object) -> TrainForm:
        """Check the form's values (model, method, source, data, learning rate, steps, LoRA r and
        alpha, batch size) as they came over HTTP; a FieldError names the first bad field."""
        model, method, source, data, learning_rate, steps, r, alpha, batch_size = form
        source = choice(source, "Data", SOURCES)
        if source == "Hub dataset":
            dataset = ("dataset=hub", override("dataset.path", hub_id(data, DATA)))
        elif source == "recorded folder":
            folder = workspace.path(data, DATA)
            dataset = (
                "dataset=jsonl",
                override("dataset.train_manifest", str(folder / "train.jsonl")),
                override("dataset.eval_manifest", str(folder / "eval.jsonl")),
            )
        else:
            manifest = workspace.path(data, DATA)
            dataset = ("dataset=jsonl", override("dataset.train_manifest", str(manifest)), "dataset.eval_manifest=null")
        return cls(
            model=choice(model, "Model", MODELS),
            method=choice(method, "Method", METHODS),
            data=dataset,
            learning_rate=number(learning_rate, "Learning rate", 1e-8, 1.0),
            steps=integer(steps, "Steps", 1, 1_000_000),
            r=integer(r, "LoRA r", 1, 1024),
            alpha=integer(alpha, "LoRA alpha", 1, 4096),
            batch_size=integer(batch_size, "Batch size", 1, 1024),
        )

    def command(self, run_dir: Path) -> list[str]:
        """The `python train.py ...` argument list (checkpoints every fifth of the steps, so that a
        stopped run can be resumed)."""
        args = [f"model={self.model}", f"method={self.method}", *self.data]
        if self.method == "lora":
            args += [f"method.r={self.r}", f"method.alpha={self.alpha}"]
        every = max(1, self.steps // 5)
        args += [
            f"trainer.learning_rate={self.learning_rate:g}",
            f"trainer.max_steps={self.steps}",
            f"trainer.per_device_train_batch_size={self.batch_size}",
            f"trainer.save_steps={every}",
            f"trainer.eval_steps={every}",
            f"trainer.logging_steps={every}",
            override("hydra.run.dir", str(run_dir)),
        ]
        return [sys.executable, str(ROOT / "train.py"), *args]


def push_command(run_dir: Path, repo_id: str, space: str, public: bool, dry_run: bool) -> list[str]:
    """The `python -m voxtral_exp.push ...` argument list for a run directory of the workspace
    (private repositories unless ``public`` is True)."""
    command = [sys.executable, "-m", "voxtral_exp.push", str(run_dir), "--repo-id", hub_id(repo_id, "Model repo")]
    command += ["--space", hub_id(space, "Demo Space")] if space and space.strip() else []
    command += ["--public"] if public is True else []
    return command + (["--dry-run"] if dry_run is True else [])


def shown(command: list[str]) -> str:
    """A command as the user would type it into a shell (`shlex.split` gives its words back)."""
    words = ["python", *[Path(w).name if w.endswith("train.py") else w for w in command[1:]]]
    return " ".join(shell_word(w) for w in words)


def shell_word(word: str) -> str:
    """``word`` quoted for a shell: an override holding single quotes reads best in double quotes."""
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)

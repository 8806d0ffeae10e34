"""The commands the app runs for the user, built from the form's values: `python train.py ...`
for the Train tab and `python -m voxtral_exp.push ...` for the Publish tab."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from voxtral_exp.app.errors import FieldError

ROOT = Path(__file__).resolve().parents[2]  # the repository: train.py, conf/
MODELS = ["tiny", "tiny-whisper", "voxtral-mini-3b", "voxtral-small-24b"]
METHODS = ["lora", "full"]
SOURCES = ["recorded folder", "manifest", "Hub dataset"]


def train_command(
    model: str,
    method: str,
    source: str,
    data: str,
    learning_rate: float,
    steps: int,
    r: int,
    alpha: int,
    batch_size: int,
    run_dir: Path,
) -> list[str]:
    """The `python train.py ...` argument list for the form's choices (checkpoints every fifth of
    the steps, so that a stopped run can be resumed)."""
    if not data:
        raise FieldError("choose the training data: a recorded folder, a manifest or a Hub dataset id")
    args = [f"model={model}", f"method={method}"]
    if source == "recorded folder":
        folder = Path(data).expanduser()
        args += [
            "dataset=jsonl",
            f"dataset.train_manifest={folder / 'train.jsonl'}",
            f"dataset.eval_manifest={folder / 'eval.jsonl'}",
        ]
    elif source == "manifest":
        args += ["dataset=jsonl", f"dataset.train_manifest={Path(data).expanduser()}", "dataset.eval_manifest=null"]
    else:
        args += ["dataset=hub", f"dataset.path={data}"]
    if method == "lora":
        args += [f"method.r={int(r)}", f"method.alpha={int(alpha)}"]
    steps = int(steps)
    every = max(1, steps // 5)
    args += [
        f"trainer.learning_rate={learning_rate:g}",
        f"trainer.max_steps={steps}",
        f"trainer.per_device_train_batch_size={int(batch_size)}",
        f"trainer.save_steps={every}",
        f"trainer.eval_steps={every}",
        f"trainer.logging_steps={every}",
        f"hydra.run.dir={run_dir}",
    ]
    return [sys.executable, str(ROOT / "train.py"), *args]


def push_command(run_dir: str, repo_id: str, space: str, private: bool, dry_run: bool) -> list[str]:
    """The `python -m voxtral_exp.push ...` argument list for the Publish tab."""
    if not run_dir:
        raise FieldError("pick a run to publish")
    if not repo_id:
        raise FieldError("type the model repo id, e.g. you/voxtral-fr")
    command = [sys.executable, "-m", "voxtral_exp.push", run_dir, "--repo-id", repo_id]
    command += (["--space", space] if space else []) + (["--private"] if private else [])
    return command + (["--dry-run"] if dry_run else [])


def shown(command: list[str]) -> str:
    """A command as the user would type it."""
    words = ["python", *[Path(w).name if w.endswith("train.py") else w for w in command[1:]]]
    return shlex.join(words)

"""Which checkpoint a run continues from, and what it holds.

The Trainer writes a checkpoint's trainer_state.json last, after weights, optimizer, scheduler
and RNG states, and deletes older checkpoints only after that: a kill during a save leaves a
folder without a readable trainer_state.json, and a damaged disk or copy a file cut short; such
a checkpoint is never chosen (the one before it is, saying so).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

from transformers import TrainerState
from transformers.trainer_utils import TrainOutput

from voxtral_exp.errors import UserError

log = logging.getLogger(__name__)


def trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json (global_step, max_steps, log_history, ...)."""
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())


def unsound(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None: its trainer state must read, and every
    weight and state file must be complete against its own header (a safetensors header gives
    the data's length; torch's zip files end with their directory)."""
    try:
        trainer_state(checkpoint)
    except (OSError, ValueError) as e:
        return f"trainer_state.json unreadable ({type(e).__name__}: its save was interrupted)"
    for path in sorted(checkpoint.rglob("*")):
        problem = _incomplete(path) if path.is_file() else None
        if problem:
            return f"{path.name} {problem}"
    return None


def _incomplete(path: Path) -> str | None:
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            try:
                header = json.loads(f.read(length)) if 0 < length <= size - 8 else None
            except ValueError:
                header = None
        if header is None:
            return "has no readable safetensors header"
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if size != 8 + length + end:
            return f"is cut short ({size} bytes of {8 + length + end})"
    elif path.suffix in (".pt", ".pth", ".bin") and zipfile.is_zipfile(path) is False:
        return "is cut short (no zip directory at its end)"
    return None


def checkpoints(folder: Path, move_strays: bool = False) -> list[Path]:
    """The checkpoints under ``folder``, newest first: the folders named checkpoint-<step>, as the
    Trainer names them. Anything else named checkpoint-* (a user's copy, checkpoint-x) is passed
    over, saying so; with ``move_strays`` (the process that trains) it is renamed stray-<name>,
    because the Trainer's checkpoint rotation would delete it."""
    found = {}
    for path in folder.glob("checkpoint-*"):
        step = re.fullmatch(r"checkpoint-([0-9]+)", path.name)
        if step and path.is_dir():
            found[path] = int(step.group(1))
        elif move_strays and not path.with_name(f"stray-{path.name}").exists():
            path.rename(path.with_name(f"stray-{path.name}"))
            log.warning(
                "%s is no checkpoint (not checkpoint-<step>): renamed stray-%s, out of the Trainer's rotation (it would delete it)",
                path,
                path.name,
            )
        else:
            log.warning("Passing over %s: it is no checkpoint (not checkpoint-<step>)", path)
    return sorted(found, key=lambda p: -found[p])


def last_complete_checkpoint(folder: Path, rename_incomplete: bool = True) -> Path | None:
    """The newest checkpoint that can be resumed from; unsound ones are skipped, saying why, and,
    with ``rename_incomplete`` (the process that writes), renamed incomplete-checkpoint-N so that
    the Trainer's own checkpoint rotation never counts them."""
    for checkpoint in checkpoints(folder, move_strays=rename_incomplete):
        problem = unsound(checkpoint)
        if problem is None:
            return checkpoint
        log.warning("Skipping checkpoint %s: %s; trying the one before it", checkpoint, problem)
        if rename_incomplete:
            checkpoint.rename(checkpoint.with_name(f"incomplete-{checkpoint.name}"))
    return None


def interrupted_message(run_dir: Path) -> str:
    """What to tell whoever pressed Ctrl-C (or the app's Stop): where the run can go on from."""
    try:
        completed = json.loads((run_dir / "run.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):  # no record yet
        completed = False
    if completed:
        return f"Interrupted after {run_dir} had completed: it is whole, there is nothing to resume"
    checkpoint = last_complete_checkpoint(run_dir / "checkpoints", rename_incomplete=False)
    if checkpoint is None:
        return (
            f"Interrupted before its first checkpoint: {run_dir} has nothing to resume from; start the run again "
            "(train.py refuses a directory that holds a run: a new hydra.run.dir, or overwrite=true to move it aside)"
        )
    return (
        f"Interrupted: {run_dir} is recorded as interrupted; `python -m voxtral_exp.resume {run_dir}` continues it "
        f"from {checkpoint.name}"
    )


def checkpoint_to_resume(setting: Any, run_dir: Path, is_main_process: bool) -> str | None:
    """`resume`: a checkpoint path, or true for the newest complete checkpoint."""
    if setting is True:
        checkpoint = last_complete_checkpoint(run_dir / "checkpoints", rename_incomplete=is_main_process)
        if checkpoint is None:
            raise UserError(
                f"no complete checkpoint under {run_dir / 'checkpoints'} to resume from: start a new run (resume=null)"
            )
        log.info("Resuming <resume=true> from %s", checkpoint)
        return str(checkpoint)
    return setting or None


def training_finished(checkpoint: str) -> bool:
    """Whether the checkpoint was saved at the run's last step (trainer_state's own max_steps)."""
    state = trainer_state(checkpoint)
    return state["global_step"] >= state["max_steps"] > 0


def finish_from_checkpoint(trainer, checkpoint: str) -> TrainOutput:
    """The run was stopped after its last checkpoint, before its end: take the weights and
    state from that checkpoint, and train no further (``trainer.train`` would run one more step).

    transformers has no public call that loads a checkpoint without training; these are the
    (private) methods ``Trainer.train`` itself uses to do it.
    """
    log.info(
        "Resuming <%s>: training had finished (its last step is checkpointed); finishing the run "
        "(final/, evaluation, model card) without training",
        checkpoint,
    )
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    trainer._load_from_checkpoint(checkpoint)
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best and Path(best).is_dir():
        trainer._load_best_model()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return TrainOutput(
        trainer.state.global_step, losses[-1] if losses else float("nan"), {"resumed_without_training": True}
    )

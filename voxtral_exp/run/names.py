"""What a run is called (its trackio name and group), the overrides it was started with, and
which preset chose its model."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


def overrides() -> list[str]:
    """The command line's overrides as typed, interpolations unresolved (so `${oc.env:...}` never
    becomes the variable's value here); none outside a Hydra app: resume, reproduce."""
    if HydraConfig.initialized():
        return OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    return []


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_name(cfg: DictConfig, run_dir: Path) -> str:
    """`tracking.name`, else <experiment>/<run dir> or, in a sweep, <sweep dir>/<job number>."""
    if cfg.tracking.name:
        return cfg.tracking.name
    if is_multirun():
        return f"{run_dir.parent.parent.name}_{run_dir.parent.name}/{run_dir.name}"
    return f"{cfg.experiment_name}/{run_dir.name}"


def run_group(cfg: DictConfig) -> str:
    """`tracking.group`, else the sweep (sweep-<date>_<time>) or the experiment name."""
    if cfg.tracking.group:
        return cfg.tracking.group
    if is_multirun():
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        return f"sweep-{sweep_dir.parent.name}_{sweep_dir.name}"
    return cfg.experiment_name


def model_chosen_by() -> str | None:
    """`dataset=granary` or `experiment=...` when that preset, not the command line, chose the
    model group (`override /model: ...` in its defaults), for the run's first log line."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if any(o.lstrip("+~").startswith("model=") for o in hydra.overrides.task):
        return None
    conf = Path(__file__).resolve().parents[2] / "conf"
    for group in ("experiment", "dataset"):
        choice = hydra.runtime.choices.get(group)
        path = conf / group / f"{choice}.yaml"
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults", []) if choice and path.is_file() else []
        if any(isinstance(d, dict) and "override /model" in d for d in defaults):
            return f"{group}={choice}"
    return None

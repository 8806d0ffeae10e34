"""What a run is called: its trackio name and group, and the overrides it was started with."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


def overrides() -> list[str]:
    """The command line's overrides (none outside a Hydra app: resume, reproduce)."""
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
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

"""Fine-tune Voxtral: `python train.py [group=option ...] [key=value ...]` (see README.md)."""

import logging

import hydra
from omegaconf import DictConfig

import voxtral_exp.config  # noqa: F401 - registers the ${voxtral.*:} resolvers conf/ uses
from voxtral_exp.training import train

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train, then return the objective so Hydra sweepers (Optuna) can minimise it."""
    metrics = train(cfg)
    return metrics.get(cfg.objective)


if __name__ == "__main__":
    main()

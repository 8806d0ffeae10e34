"""Fine-tune Voxtral: `python train.py [group=option ...] [key=value ...]` (see README.md)."""

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from voxtral_exp.errors import UserError
from voxtral_exp.run import config  # noqa: F401 - registers the ${voxtral.*:} resolvers conf/ uses
from voxtral_exp.run.record import check_free
from voxtral_exp.training.distributed import (
    join_submitit_job,
    quiet_non_zero_ranks,
    share_run_dir,
)
from voxtral_exp.training.recipe import train

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train, then return the objective so Hydra sweepers (Optuna) can minimise it.

    In a sweep a failed job is recorded (run.json status "failed") and returns NaN, so the
    sweep goes on and the summary still gets written.
    """
    join_submitit_job()  # a submitit job of several tasks is one torch.distributed job
    share_run_dir(cfg)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        metrics = train(cfg)
    except UserError as e:  # bad config or data: the message says what to do, no traceback
        log.error("%s", e)
        if multirun:
            return math.nan
        sys.exit(1)
    except Exception:
        if not multirun:
            raise
        log.exception("Job failed; recorded in run.json, the sweep goes on")
        return math.nan
    return metrics.get(cfg.objective, math.nan)


def refuse_a_run_dir_in_use(argv: list[str]) -> None:
    """Hydra writes .hydra/ into the run directory before main() runs: with an explicit
    hydra.run.dir (plain or quoted, as the web app gives it), check that no live process trains
    there first."""
    for word in argv[1:]:
        if word.partition("=")[0] != "hydra.run.dir":
            continue
        try:
            value = OverridesParser.create().parse_override(word).value()
        except HydraException:
            continue  # Hydra reports it
        if isinstance(value, str) and "${" not in value:
            try:
                check_free(Path(value))
            except UserError as e:
                sys.exit(f"error: {e}")


if __name__ == "__main__":
    quiet_non_zero_ranks(sys.argv)
    refuse_a_run_dir_in_use(sys.argv)
    main()

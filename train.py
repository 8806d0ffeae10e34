"""Fine-tune Voxtral: `python train.py [group=option ...] [key=value ...]` (see README.md)."""

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from voxtral_exp.errors import UserError
from voxtral_exp.run import config  # noqa: F401 - registers the ${voxtral.*:} resolvers conf/ uses
from voxtral_exp.training.checkpoints import interrupted_message
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
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        join_submitit_job()  # a submitit job of several tasks is one torch.distributed job
        share_run_dir(cfg)
        metrics = train(cfg)
    except UserError as e:  # bad config or data: the message says what to do, no traceback
        log.error("%s", e)
        if multirun:
            return math.nan
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C or the app's Stop: recorded; say how to go on, no traceback
        if multirun:  # the whole sweep stops
            raise
        log.warning("%s", interrupted_message(Path(cfg.paths.output_dir)))
        sys.exit(130)  # the shell's status for a process ended by SIGINT
    except Exception:
        if not multirun:
            raise
        log.exception("Job failed; recorded in run.json, the sweep goes on")
        return math.nan
    return metrics.get(cfg.objective, math.nan)


if __name__ == "__main__":
    quiet_non_zero_ranks(sys.argv)
    main()

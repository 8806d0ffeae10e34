"""Several processes, one run: torchrun / accelerate, or Hydra's submitit launcher with several
tasks per job (SLURM `tasks_per_node` / `nodes`, or `launcher=local`). Only rank 0 writes.

torchrun: each rank composes its own Hydra config, and `${now:}` in the run directory can
resolve to a different second on each. Ranks > 0 therefore get a throw-away Hydra directory and
no Hydra files or log file; once the process group is up, rank 0's run directory is broadcast.
submitit: every task runs the job's Hydra function in the same job directory; submitit's job
environment gives the rank, world size and master address, exported as torch.distributed's
env:// variables before the process group starts.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import torch
import torch.distributed as dist
from omegaconf import DictConfig, open_dict


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def quiet_non_zero_ranks(argv: list[str]) -> None:
    """Before Hydra starts: ranks > 0 write no .hydra/ and no log file into the run directory."""
    if world_size() > 1 and rank() > 0:
        if any(a in ("-m", "--multirun") for a in argv):
            sys.exit("torchrun and Hydra multirun (-m) do not combine: launch one run per torchrun call")
        throwaway = tempfile.mkdtemp(prefix=f"voxtral_exp_rank{rank()}_")
        atexit.register(shutil.rmtree, throwaway, ignore_errors=True)
        argv += [
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
            f"hydra.run.dir={throwaway}",
        ]


def join_submitit_job() -> None:
    """Inside a submitit job of several tasks: export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
    MASTER_PORT from submitit's job environment (so one job is one torch.distributed job), and
    keep ranks > 0 out of the job's log file."""
    if "SUBMITIT_EXECUTOR" not in os.environ or "RANK" in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment()
    if env.world_size <= 1:
        return
    env.export(set_cuda_visible_devices=False)  # LOCAL_RANK picks the GPU (share_run_dir)
    if env.rank > 0:
        import logging

        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)


def share_run_dir(cfg: DictConfig) -> None:
    """Inside the job: start the process group and give every rank rank 0's run directory."""
    if world_size() <= 1:
        return
    if not dist.is_initialized():
        backend = "nccl" if cfg.hardware.device == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    shared = [str(cfg.paths.output_dir)]
    dist.broadcast_object_list(shared, src=0)
    with open_dict(cfg):
        cfg.paths.output_dir = shared[0]

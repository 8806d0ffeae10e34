"""Continue a run that stopped (crash, Ctrl-C, SIGKILL) from its newest complete checkpoint.

    python -m voxtral_exp.resume RUN_DIR
    torchrun --nproc_per_node=8 -m voxtral_exp.resume RUN_DIR     # a run started under torchrun

Same run directory, same resolved config, same trackio run; run.json gains an attempt. On CPU
the resumed run ends with the same weights and losses as an uninterrupted one. A run that
completed is left as it is; a run stopped after its last checkpoint finishes its remaining work
(final/, evaluation, model card) without training another step.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from omegaconf import open_dict

from voxtral_exp.errors import run_command
from voxtral_exp.run.record import check_free, load_run_config, log_to
from voxtral_exp.training.checkpoints import interrupted_message
from voxtral_exp.training.distributed import rank, share_run_dir
from voxtral_exp.training.recipe import train

log = logging.getLogger("resume")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the run directory to continue")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    record = run_dir / "run.json"
    run = json.loads(record.read_text()) if record.is_file() else {}
    if run.get("status") == "completed" and (run_dir / "final").is_dir():
        print(f"{run_dir} completed at {run.get('end_time')}: nothing to resume, nothing changed")
        return 0
    check_free(run_dir)  # a run that is still training is not resumed twice (before the process group forms)
    cfg = load_run_config(run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.resume = True
    share_run_dir(cfg)  # under torchrun: the process group (every rank names the same run)
    if rank() == 0:
        log_to(run_dir)
    try:
        train(cfg)
    except KeyboardInterrupt:  # Ctrl-C or the app's Stop: recorded; say how to go on, no traceback
        if rank() == 0:  # under torchrun every rank is interrupted; one says so
            log.warning("%s", interrupted_message(run_dir))
        return 130
    return 0


if __name__ == "__main__":
    run_command(main)

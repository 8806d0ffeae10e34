"""Continue a run that stopped (crash, Ctrl-C, SIGKILL) from its newest complete checkpoint.

    python -m voxtral_exp.resume RUN_DIR

Same run directory, same resolved config, same trackio run; run.json gains an attempt. On CPU
the resumed run ends with the same weights and losses as an uninterrupted one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import open_dict

from voxtral_exp.run_record import load_run_config, log_to
from voxtral_exp.training import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the run directory to continue")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    cfg = load_run_config(run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.training.resume_from_checkpoint = True
    log_to(run_dir)
    train(cfg)


if __name__ == "__main__":
    main()

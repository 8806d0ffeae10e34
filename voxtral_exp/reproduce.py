"""Re-run a run exactly from what it saved: its fully resolved config.

    python -m voxtral_exp.reproduce RUN_DIR [--out NEW_DIR]

Warns when the code (git commit, uncommitted changes) or package versions differ from the
original's. On CPU with the tiny model the per-step training losses equal the original's.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime
from pathlib import Path

from omegaconf import open_dict

from voxtral_exp.errors import run_command
from voxtral_exp.run.record import git_state, load_run_config, log_to, package_versions
from voxtral_exp.training.recipe import train

log = logging.getLogger("voxtral_exp.reproduce")


def differences(run_dir: Path) -> list[str]:
    """What differs between the original run's code and packages and this environment."""
    run = json.loads((run_dir / "run.json").read_text())
    found = []
    then, now = run.get("git", {}), git_state()
    if then.get("commit") != now["commit"]:
        found.append(f"git commit differs: original {then.get('commit')}, now {now['commit']}")
    if now["dirty"] or then.get("dirty"):
        found.append(f"uncommitted changes: original dirty={then.get('dirty')}, now dirty={now['dirty']}")
    current = package_versions()
    for name, version in run.get("packages", {}).items():
        if current.get(name) != version:
            found.append(f"package {name}: original {version}, now {current.get(name)}")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the run directory to reproduce")
    parser.add_argument("--out", type=Path, help="where the reproduction goes (default: RUN_DIR-reproduced-<time>)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or run_dir.with_name(f"{run_dir.name}-reproduced-{stamp}")).resolve()
    cfg = load_run_config(run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.resume = None
        cfg.tracking.name = f"{cfg.tracking.name}-reproduced-{stamp}"
    log_to(out)
    for difference in differences(run_dir):
        log.warning("Reproducing %s: %s", run_dir, difference)
    log.info("Reproducing %s into %s", run_dir, out)
    train(cfg)


if __name__ == "__main__":
    run_command(main)

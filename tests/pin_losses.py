"""Rewrite tests/pinned_losses.json: the per-step training losses of the shared 30-step full
fine-tuning run (tests/conftest.py's FULL_RUN), which tests/test_train.py pins to 1e-5.

    make pin-losses        # = OMP_NUM_THREADS=1 .venv/bin/python -m tests.pin_losses

Run it only when a change is meant to move the losses, and say why in the commit.
"""

import json
import tempfile
from pathlib import Path

from tests.conftest import FULL_RUN, ONE_THREAD, losses, run_train

PINNED = Path(__file__).with_name("pinned_losses.json")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_train([*FULL_RUN, f"hydra.run.dir={run_dir}", "tracking.enabled=false"], Path(tmp), env=ONE_THREAD)
        pinned = {str(step): loss for step, loss in losses(run_dir)}
    PINNED.write_text(json.dumps({"overrides": FULL_RUN, "losses": pinned}, indent=2) + "\n")
    print(f"wrote {len(pinned)} losses to {PINNED}")


if __name__ == "__main__":
    main()

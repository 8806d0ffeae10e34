"""Rebuild a sweep's summary (summary.csv, summary.md, summary.png) from its job directories.

python -m voxtral_exp.sweep multirun/2026-11-27/10-00-00 [OBJECTIVE]
"""

import logging
import sys
from pathlib import Path

from voxtral_exp.run.sweep_summary import summarize

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m voxtral_exp.sweep SWEEP_DIR [OBJECTIVE]")
    logging.basicConfig(level=logging.INFO)
    summarize(Path(args[0]), args[1] if len(args) > 1 else "eval_loss")

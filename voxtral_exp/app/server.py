"""Start the web app: `python -m voxtral_exp.app [--host 127.0.0.1] [--port 7860] [--workdir DIR]`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from voxtral_exp.app.command import ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where datasets/ and outputs/ go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    from voxtral_exp.app.page import build

    build(args.workdir.resolve()).queue().launch(server_name=args.host, server_port=args.port, show_error=True)

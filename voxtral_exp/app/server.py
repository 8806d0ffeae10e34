"""Start the web app.

    python -m voxtral_exp.app [--host 127.0.0.1] [--port 7860] [--workdir DIR]
                              [--auth USER:PASSWORD | --auth-file FILE]

Every path the app reads or writes is in one workspace, --workdir (default: workspace/ in the
project): recorded datasets, the runs it starts (outputs/app/), the runs it lists to try or publish.

Safe by default: it binds to this machine only (127.0.0.1). A login (Gradio's own login page)
comes from --auth, --auth-file (a file holding one line `user:password`) or the environment
variable VOXTRAL_EXP_APP_AUTH=user:password (the last two keep the password out of the shell's
history). Serving on any other interface without a login is refused at start: whoever reaches
the port could train, read the workspace and publish under the owner's Hugging Face token.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from voxtral_exp.app.command import ROOT
from voxtral_exp.errors import UserError

AUTH_VARIABLE = "VOXTRAL_EXP_APP_AUTH"
LOCALHOST = ("127.0.0.1", "::1", "localhost")


class ServerError(UserError):
    """The app cannot start as asked; the message says why and what to do."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voxtral_exp.app", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / "workspace", help="the workspace: every path the app reads or writes"
    )
    login = parser.add_mutually_exclusive_group()
    login.add_argument("--auth", metavar="USER:PASSWORD", help=f"require this login (or set ${AUTH_VARIABLE})")
    login.add_argument("--auth-file", type=Path, metavar="FILE", help="require the login on FILE's one line")
    return parser.parse_args(argv)


def login(args: argparse.Namespace) -> tuple[str, str] | None:
    """(user, password) from --auth, --auth-file or $VOXTRAL_EXP_APP_AUTH; None when none is given."""
    if args.auth is not None:
        return split_login(args.auth, "--auth")
    if args.auth_file is not None:
        try:
            lines = [line for line in args.auth_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise ServerError(f"--auth-file {args.auth_file}: cannot read it ({e})") from None
        if len(lines) != 1:
            raise ServerError(f"--auth-file {args.auth_file}: write exactly one line, user:password")
        return split_login(lines[0], f"--auth-file {args.auth_file}")
    if os.environ.get(AUTH_VARIABLE):  # taken out of the environment: the runs the app starts never see it
        return split_login(os.environ.pop(AUTH_VARIABLE), f"${AUTH_VARIABLE}")
    return None


def split_login(text: str, source: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not (sep and user and password):
        raise ServerError(f"{source}: give the login as user:password (both parts non-empty)")
    return user, password


def check_exposure(host: str, credentials: tuple[str, str] | None) -> None:
    """Refuse to serve beyond this machine without a login."""
    if credentials is None and host not in LOCALHOST:
        raise ServerError(
            f"refusing to serve on {host} without a login: anyone who reaches this port could train on this "
            "machine, read the workspace and publish to the Hub under your token. Set a login with "
            f"--auth-file FILE (one line user:password) or {AUTH_VARIABLE}=user:password, "
            "or leave out --host to serve on 127.0.0.1 (this machine) only."
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    credentials = login(args)
    check_exposure(args.host, credentials)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    from voxtral_exp.app.page import build
    from voxtral_exp.app.workspace import Workspace

    build(Workspace.create(args.workdir)).queue().launch(
        server_name=args.host,
        server_port=args.port,
        share=False,  # never a public link (as $GRADIO_SHARE=true would ask): check_exposure is the only way out
        show_error=True,
        auth=credentials,
        auth_message="voxtral_exp: log in with the user:password the app was started with.",
    )

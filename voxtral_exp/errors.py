"""`UserError`: a problem the user fixes in their config, data or command line.

Every entry point (train.py, the commands, the web app) catches this one class and shows its
message alone, without a traceback: the message names the key, file and line or column, and
says what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Base class of every "fix your config or data" error."""


def run_command(main: Callable[[], int | None]) -> None:
    """Run a command's ``main`` and exit with its status; a UserError exits 1 with its message."""
    try:
        sys.exit(main())
    except UserError as e:
        sys.exit(f"error: {e}")

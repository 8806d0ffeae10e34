"""Form values checked for what they are before the app uses them, and passed to train.py as
literal values that Hydra can neither interpolate nor split.

Every value reaches this module as it came over HTTP, whatever the page offered: numbers must be
numbers within sane bounds, choices one of the options, Hub ids a strict `owner/name`. Paths are
the workspace's business (workspace.py). On the command line each text value is single-quoted
(Hydra's override grammar reads it as one string, whatever spaces, `=` or `,` it holds), its
quotes are escaped and `${` becomes `\\${`, OmegaConf's escape for a literal `${`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from voxtral_exp.app.errors import FieldError

# owner/name as the Hub allows them: letters, digits, '-', '_', '.'; not starting or ending with '-' or '.'
HUB_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
UNQUOTABLE = re.compile(
    r"[\\\x00-\x1f\x7f]"
)  # backslashes (they would change what the escapes mean), control characters


def choice(value: object, field: str, options: Sequence[str]) -> str:
    if value not in options:
        raise FieldError(f"{field}: {value!r} is not one of {', '.join(options)}")
    return str(value)


def number(value: object, field: str, low: float, high: float) -> float:
    """A number in [low, high]: not a string, not a bool, not NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError(f"{field}: {value!r} is not a number; give one between {low:g} and {high:g}")
    if not low <= value <= high:
        raise FieldError(f"{field}: {value:g} is out of range; give a number between {low:g} and {high:g}")
    return float(value)


def integer(value: object, field: str, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    number_ = number(value, field, low, high)
    if number_ != int(number_):
        raise FieldError(f"{field}: {number_:g} is not a whole number")
    return int(number_)


def hub_id(value: object, field: str) -> str:
    """A Hugging Face Hub repository id, `owner/name`."""
    text = value.strip() if isinstance(value, str) else ""
    if not HUB_ID.fullmatch(text) or ".." in text or "--" in text:
        raise FieldError(
            f"{field}: {value!r} is not a Hub id: give owner/name (letters, digits, '-', '_', '.'), e.g. you/voxtral-fr"
        )
    return text


def override(key: str, value: str) -> str:
    """`key='value'`: a Hydra override whose value is the literal string ``value``."""
    if UNQUOTABLE.search(value):
        raise FieldError(f"{key}: {value!r} holds a backslash or a control character, which train.py is not given")
    return f"{key}='" + value.replace("'", "\\'").replace("${", "\\${") + "'"

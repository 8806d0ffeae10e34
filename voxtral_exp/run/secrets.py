"""Secrets (Hugging Face tokens, API keys) never reach a log, a saved config, run.json or trackio.

Tokens come from the environment (HF_TOKEN) or `hf auth login`, never from the config: a
secret-looking key in the config stops the run (``refuse_secrets``), after blanking it in the
files Hydra has already written. Everything a run saves goes through ``redact`` /
``redact_argv`` too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from voxtral_exp.errors import UserError
from voxtral_exp.files import write_atomic

REDACTED = "<redacted>"
# key names whose values are secrets: hf_token, hub_token, api_key, password ... (not max_new_tokens)
SECRET_KEY = re.compile(r"(^|[._+])(\w*_)?(token|secret|password|api_?key|access_key)$", re.IGNORECASE)
ENV_INTERPOLATION = re.compile(r"\$\{oc\.env:([^,}]+)")  # the variable an `${oc.env:NAME}` value reads


class SecretInConfigError(UserError, ValueError):
    """A secret-looking key in the config."""


def redact(value: Any) -> Any:
    """A plain-Python copy with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """Command-line words with the value of any secret-looking `key=value`, or of one that reads a
    secret-looking environment variable, replaced."""
    words = []
    for word in argv:
        key, sep, value = word.partition("=")
        secret = sep and (SECRET_KEY.search(key) or reads_secret_variable(value))
        words.append(f"{key}={REDACTED}" if secret else word)
    return words


def secret_values(value: Any, prefix: str = "") -> dict[str, str]:
    """{dotted key: value} for every secret-looking key that holds a string, and every key whose
    value reads a secret-looking environment variable (`${oc.env:HF_TOKEN}`): resolved, it would be
    saved, logged and echoed in error messages like any other value."""
    found = {}
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}{k}"
            if isinstance(v, str) and v and (SECRET_KEY.search(str(k)) or reads_secret_variable(v)):
                found[key] = v
            else:
                found.update(secret_values(v, key + "."))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.update(secret_values(v, f"{prefix}{i}."))
    return found


def reads_secret_variable(value: str) -> bool:
    """Whether a config value interpolates a secret-looking environment variable (HF_TOKEN, ...)."""
    return any(SECRET_KEY.search(name.strip()) for name in ENV_INTERPOLATION.findall(value))


def refuse_secrets(cfg: DictConfig, run_dir: Path) -> None:
    """Secrets never belong in the config: Hydra has already saved it under .hydra/, so blank
    them there, then refuse to run with a message saying where tokens come from."""
    found = secret_values(OmegaConf.to_container(cfg, resolve=False))
    if not found:
        return
    for path in (run_dir / ".hydra").glob("*.yaml"):
        text = path.read_text()
        for value in found.values():
            text = text.replace(value, REDACTED)
        write_atomic(path, text)
    keys = ", ".join(sorted(found))
    raise SecretInConfigError(
        f"invalid config:\n  - {keys}: secrets never go in the config (it is saved with the run); "
        "export HF_TOKEN or run `hf auth login` instead"
    )

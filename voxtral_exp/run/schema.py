"""The keys the project's own config groups know, read from the shipped YAML (conf/): a key
added with `+` that no option of its group declares (a typo such as
`+dataset.filters.max_duraton=5`) is refused with the closest valid key, instead of being
silently ignored. `trainer.*` is checked by transformers' TrainingArguments itself; the model's
`text_config` / `audio_config` take any transformers config field.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("model", "dataset", "method", "hardware", "evaluation", "tracking", "paths")
FREE_FORM = ("model.text_config", "model.audio_config")  # transformers config fields, validated there
NOT_CHECKED = ("trainer", "hydra")  # TrainingArguments refuses unknown fields itself; Hydra's own node


def unknown_key_problems(cfg: DictConfig) -> list[str]:
    """One problem per key the chosen options of voxtral_exp's groups do not declare."""
    known = set(_flatten(_top_level()))
    for group in GROUPS:
        option = _option_of(cfg, group)
        if option is not None:
            known |= {f"{group}.{key}" for key in option_keys(group, option)}
    problems = []
    for key in _flatten(OmegaConf.to_container(cfg, resolve=False), leaves_only=True):
        if key in known or key.startswith(FREE_FORM) or key.split(".")[0] in NOT_CHECKED:
            continue
        if key.split(".")[0] in GROUPS and _option_of(cfg, key.split(".")[0]) is None:
            continue  # an option this checkout does not ship (a test's or a user's own): nothing to compare
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{key}: no such key in voxtral_exp's config ({hint}see `python train.py --cfg job`)")
    return problems


def _option_of(cfg: DictConfig, group: str) -> str | None:
    """The option file the group's node came from: its `name`, or the group's only option."""
    node = cfg.get(group)
    name = node.get("name") if isinstance(node, DictConfig) else None
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))
    if name in options:
        return name
    return options[0] if len(options) == 1 and name is None else None


@functools.cache
def option_keys(group: str, option: str) -> frozenset[str]:
    """Dotted keys an option declares, its defaults within the group (fleurs -> hub -> _common)
    included."""
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    keys = set()
    for default in data.get("defaults", []):
        if isinstance(default, str) and default != "_self_":
            path = default.lstrip("/").split("@")[0]
            parent, _, name = path.rpartition("/")
            if parent in ("", group) and (CONF / group / f"{name}.yaml").is_file():
                keys |= option_keys(group, name)
    body = {k: v for k, v in data.items() if k != "defaults"}
    if _is_global(group, option):  # `# @package _global_`: the group's node is one of its keys
        body = body.get(group, {})
    return frozenset(keys | set(_flatten(body)))


def _is_global(group: str, option: str) -> bool:
    return "@package _global_" in (CONF / group / f"{option}.yaml").read_text().split("\n", 1)[0]


def _top_level() -> dict[str, Any]:
    data = yaml.safe_load((CONF / "train.yaml").read_text())
    return {k: v for k, v in data.items() if k != "defaults"} | dict.fromkeys([*GROUPS, "trainer"])


def _flatten(value: Any, prefix: str = "", leaves_only: bool = False) -> list[str]:
    """Every dotted key of a nested dict: inner nodes included, or only the leaves."""
    if not isinstance(value, dict):
        return []
    keys = []
    for k, v in value.items():
        key = f"{prefix}{k}"
        inner = isinstance(v, dict) and v and not key.startswith(FREE_FORM)
        if not (leaves_only and inner):
            keys.append(key)
        if inner:
            keys += _flatten(v, key + ".", leaves_only)
    return keys

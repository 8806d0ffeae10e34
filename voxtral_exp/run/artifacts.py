"""What a finished run leaves for others: the model in its final/ (a full model: config.json and
weights; a LoRA adapter: adapter_config.json and adapter weights), which the web app lists and
`python -m voxtral_exp.push` publishes."""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path

from voxtral_exp.errors import UserError

# The files of final/ that make up the model (what push uploads); nothing else there leaves the
# machine (training_args.bin, merged/, notes, dot-files and dot-folders).
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tekken.json",
    "tokenizer*.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template*",
    "audio.json",  # runs saved before 2026-12: how the model reads audio (now in processor_config.json)
)
CARD = "README.md"  # the model card, at the top of final/
BASE_MODEL = "base_model"  # the random base a LoRA adapter was trained on (model=tiny and friends)


class NotARunError(UserError, ValueError):
    """A folder that is not a finished run of this project."""


class LinkError(UserError, ValueError):
    """A symbolic link where a run's own model files are expected."""


def has_model(final: Path) -> bool:
    """Whether ``final`` holds a full model (config.json + weights) or a LoRA adapter."""
    full = (final / "config.json").is_file() and any(final.glob("model*.safetensors"))
    adapter = (final / "adapter_config.json").is_file() and any(final.glob("adapter_model*.safetensors"))
    return full or adapter


def is_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run directory of this project (run.json) with a model in final/."""
    return (run_dir / "run.json").is_file() and has_model(run_dir / "final")


def run_final(path: Path) -> Path:
    """The final/ folder of the run ``path`` (the run directory or its final/); refused unless it
    is a run of this project with a model in final/. final/ is not resolved: a symbolic link there
    (to another run's final/, say) is refused by model_files, not followed."""
    path = Path(os.path.abspath(path))  # `..` taken lexically, before any link is followed
    run_dir = (path.parent if path.name == "final" else path).resolve()
    if not is_run(run_dir):
        raise NotARunError(
            f"{path} is not a finished voxtral_exp run: a run directory holds run.json and final/ with the model "
            "(config.json and model weights, or adapter_config.json and adapter weights); give the run directory "
            "or its final/"
        )
    return run_dir / "final"


def model_files(final: Path) -> list[str]:
    """The model files of ``final`` (relative paths, sorted): the card, the allow-listed files at
    its top and in base_model/, never dot-files. A symbolic link among them (final/ itself,
    base_model/, the card or a model file) is refused, naming it: it would send a file from outside
    the run (a token file as the card, another run's model)."""
    found = []
    for folder, prefix in ((final, ""), (final / BASE_MODEL, f"{BASE_MODEL}/")):
        refuse_link(folder)
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            wanted = (not prefix and path.name == CARD) or any(fnmatch(path.name, p) for p in MODEL_FILES)
            if wanted and not path.name.startswith("."):
                refuse_link(path)
                if path.is_file():
                    found.append(prefix + path.name)
    return sorted(found)


def refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise LinkError(
            f"{path} is a symbolic link (to {os.readlink(path)}): only a run's own files are published. "
            "Replace it with the file or folder itself, or remove it"
        )

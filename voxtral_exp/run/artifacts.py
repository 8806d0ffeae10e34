"""What a finished run leaves for others: the model in its final/ (a full model: config.json and
weights; a LoRA adapter: adapter_config.json and adapter weights), which the web app lists and
`python -m voxtral_exp.push` publishes."""

from __future__ import annotations

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
    is a run of this project with a model in final/."""
    path = Path(path).resolve()
    run_dir = path.parent if path.name == "final" else path
    if not is_run(run_dir):
        raise NotARunError(
            f"{path} is not a finished voxtral_exp run: a run directory holds run.json and final/ with the model "
            "(config.json and model weights, or adapter_config.json and adapter weights); give the run directory "
            "or its final/"
        )
    return run_dir / "final"


def model_files(final: Path) -> list[str]:
    """The model files of ``final`` (relative paths, sorted): the card, the allow-listed files at
    its top and in base_model/; regular files only (no symbolic links), never dot-files."""
    found = [CARD] if _regular(final / CARD) else []
    for folder, prefix in ((final, ""), (final / BASE_MODEL, f"{BASE_MODEL}/")):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for path in folder.iterdir():
            if _regular(path) and any(fnmatch(path.name, pattern) for pattern in MODEL_FILES):
                found.append(prefix + path.name)
    return sorted(found)


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and not path.name.startswith(".")

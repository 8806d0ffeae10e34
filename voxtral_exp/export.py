"""Export a finished run's model in Mistral's native layout, the one vLLM and the other Voxtral
runtimes (ExecuTorch, the MLX, C++ and Rust ports) load:

    python -m voxtral_exp.export RUN_DIR --out DIR [--dtype auto|bfloat16|float32|float16] [--force]
    vllm serve DIR --tokenizer-mode mistral --config-format mistral --load-format mistral

DIR gets ``consolidated.safetensors`` (a LoRA adapter merged into its base), ``params.json`` (the
model's shapes) and ``tekken.json`` (the base model's vocabulary, its audio section stating
Voxtral's rule: 375 audio tokens per 30 s chunk). Weights keep the training dtype (--dtype auto:
the run's model.dtype, or bf16 where it trained under bf16, fp32 on CPU).

Refused, writing nothing: a folder that is not a finished run; an --out that is the run or
around it, or holds files (with --force, only an earlier export's files are replaced); a model the
format cannot state as trained. That includes models trained with
`model.audio_tokens=clip`: no tekken.json audio section reproduces their prompts (mistral-common
pads to a multiple of `chunk_length_s` with no margin) and vLLM 0.33.0 cannot batch clips of
different padded lengths (README, "Serve it"). voxtral_exp's transcribe, app and Space serve them
as trained.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from voxtral_exp.errors import UserError, run_command
from voxtral_exp.files import write_json
from voxtral_exp.model.audio_rule import read_rule
from voxtral_exp.model.mistral_format import distance_from_sinusoids, params, to_mistral, unrepresentable
from voxtral_exp.model.modeling import merged_model
from voxtral_exp.model.processor import load_processor
from voxtral_exp.realtime.model import saved_is_realtime
from voxtral_exp.run.artifacts import run_final
from voxtral_exp.run.record import load_run_config

log = logging.getLogger("voxtral_exp.export")

FILES = ("consolidated.safetensors", "params.json", "tekken.json")  # all an export folder holds
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
# Whisper's positions are computed, not stored: every reader rebuilds the sinusoids. A model whose
# own are further from them than bf16 resolves (values up to 1: 2^-8), the precision runtimes serve
# in, would be served with other positions than it was trained with (a random draw is ~1 off).
POSITION_TOLERANCE = 2**-8


class ExportError(UserError):
    """The run cannot be exported as asked; the message says why and what to do."""


def export(run: Path, out: Path, dtype: str = "auto", force: bool = False) -> Path:
    """Write ``out``/{consolidated.safetensors, params.json, tekken.json} for the finished run
    ``run`` (its directory or final/); returns ``out``."""
    final = run_final(run)  # refuses a folder that is not a run with a model
    check_status(final.parent)
    check_target(out, final.parent, force)
    if saved_is_realtime(final):
        raise ExportError(
            f"{final.parent} is a Voxtral Realtime run: export writes the 2507 models' layout only. Serve it from "
            f"{final} with transformers (the model card's code) or `python -m voxtral_exp.transcribe {final.parent}`"
        )
    if not (final / "tekken.json").is_file():
        raise ExportError(f"{final / 'tekken.json'} not found: the run's processor was saved without its tokenizer")
    try:
        processor = load_processor(str(final))
        rule = read_rule(processor, final)
        torch_dtype = export_dtype(final.parent, dtype)
        model = merged_model(final, torch_dtype)
    except (OSError, ValueError) as e:  # a damaged final/ (processor, weights) or a base model that cannot be found
        raise ExportError(f"cannot load the model in {final}: {type(e).__name__}: {e}") from None
    if not rule.is_voxtrals_own:
        raise ExportError(
            f"{final.parent} was trained with {rule.describe()}: Mistral's format has no way to state it. A "
            "tekken.json audio section pads each clip to a multiple of chunk_length_s with no margin, and vLLM "
            "0.33.0 stacks every 3000-frame piece of a batch, so clips of different lengths cannot be batched "
            "(README, Serve it). Serve it as trained with `python -m voxtral_exp.transcribe`, the web app or a "
            "demo Space (`python -m voxtral_exp.push --space`)"
        )
    check_representable(model, final.parent)
    weights = to_mistral(model.state_dict(), model.config)
    tekken = tekken_json(final / "tekken.json", model.config.audio_config.num_mel_bins)
    write_export(out, weights, params(model.config), tekken)
    log.info("Exported %s (%s) to %s", final.parent, torch_dtype, out)
    return out


def check_status(run_dir: Path) -> None:
    """Only a completed run exports."""
    try:
        status = json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError) as e:
        raise ExportError(f"{run_dir / 'run.json'} is unreadable ({type(e).__name__}: {e})") from None
    if status != "completed":
        raise ExportError(f"{run_dir} is {status}, not completed: resume it (python -m voxtral_exp.resume) first")


def check_target(out: Path, run_dir: Path, force: bool) -> None:
    """--out must be a folder of its own: not the run or anything around or in it, empty or new
    (with --force, also one that holds an earlier export and nothing else), beside a folder that
    can be written to (the export is staged there and moved in)."""
    out, run_dir = out.resolve(), run_dir.resolve()
    if out == run_dir or run_dir.is_relative_to(out) or out.is_relative_to(run_dir):
        raise ExportError(f"--out {out} is the run {run_dir}, inside it or around it: give a folder of its own")
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file: give a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not force:
        raise ExportError(f"--out {out} is not empty: choose another folder, or --force to replace an earlier export")
    others = sorted(set(held) - set(FILES))
    if others:
        named = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ExportError(
            f"--out {out} holds more than an export ({named}): --force replaces only an earlier export's files; "
            "choose another folder"
        )
    parent = next(p for p in out.parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ExportError(f"--out {out}: {parent} cannot be written to")


def export_dtype(run_dir: Path, dtype: str) -> torch.dtype:
    """--dtype auto: the run's own model.dtype, else bf16 where it trained under bf16 autocast
    (GPU, as Mistral's checkpoints are published), fp32 where it did not (CPU)."""
    if dtype != "auto":
        return DTYPES[dtype]
    cfg = load_run_config(run_dir)
    if cfg.model.dtype != "auto":
        return DTYPES[cfg.model.dtype]
    return torch.bfloat16 if cfg.trainer.get("bf16") else torch.float32


def check_representable(model: torch.nn.Module, run_dir: Path) -> None:
    """Refuse a model that Mistral's layout would change: an architecture it cannot state, or
    encoder positions other than the sinusoids every reader rebuilds."""
    problems = unrepresentable(model.config)
    positions = model.model.audio_tower.embed_positions.weight
    if (distance := distance_from_sinusoids(positions)) > POSITION_TOLERANCE:
        problems.append(
            f"encoder positions that differ from Whisper's sinusoids by up to {distance:.1e}, which runtimes rebuild "
            "(model.encoder_positions=as_built: model=tiny's random draw, or a run saved before 2026-12; train with "
            "model.encoder_positions=sinusoids to export)"
        )
    if problems:
        raise ExportError(f"{run_dir} cannot be exported faithfully: " + "; ".join(problems))


def tekken_json(source: Path, num_mel_bins: int) -> dict:
    """The model's own tekken.json (final/'s: the base model's vocabulary and special tokens) with
    the audio section of Voxtral's rule: 30 s chunks, 12.5 audio tokens a second, this encoder's
    mel bins."""
    data = json.loads(source.read_text(encoding="utf-8"))
    data["audio"] = {
        "sampling_rate": 16000,
        "frame_rate": 12.5,
        "audio_encoding_config": {"num_mel_bins": num_mel_bins, "hop_length": 160, "window_size": 400},
        "chunk_length_s": 30.0,
    }
    return data


def write_export(out: Path, weights: dict[str, torch.Tensor], params_json: dict, tekken: dict) -> None:
    """The three files, written into a staging folder beside ``out`` and moved into place when
    complete; an earlier export in ``out`` is moved aside first and deleted last. A failure, or a
    kill, leaves ``out`` as it was (a killed export's staging folder is removed by the next one)."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging, old = (out.with_name(f".{out.name}.{kind}-{os.getpid()}") for kind in ("export", "replaced"))
    staging.mkdir()
    try:
        save_file(weights, str(staging / "consolidated.safetensors"), metadata={"format": "pt"})
        write_json(staging / "params.json", params_json)
        # as readable as the other files (safetensors writes 0600)
        shutil.copymode(staging / "params.json", staging / "consolidated.safetensors")
        (staging / "tekken.json").write_text(json.dumps(tekken, ensure_ascii=False), encoding="utf-8")
        check_tokenizer(staging / "tekken.json")
        if out.is_dir() and any(out.iterdir()):  # --force, checked: an earlier export
            os.replace(out, old)
        os.replace(staging, out)  # onto an empty folder; fails if another export filled it meanwhile
    except OSError as e:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise ExportError(f"could not write {out}: {type(e).__name__}: {e} (nothing changed there)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_staging(out: Path) -> None:
    """Staging folders of exports to ``out`` that were killed (their process is gone)."""
    for folder in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def check_tokenizer(path: Path) -> None:
    """mistral-common, which vLLM's --tokenizer-mode mistral uses, must load the file."""
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    try:
        MistralTokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - anything it rejects is a broken export
        raise ExportError(f"mistral-common cannot read the exported tekken.json ({type(e).__name__}: {e})") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run directory (or its final/)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (empty or new)")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto", help="weights' dtype (auto: training's)")
    parser.add_argument("--force", action="store_true", help="replace what --out holds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(export(args.run, args.out.resolve(), args.dtype, args.force))


if __name__ == "__main__":
    run_command(main)

"""Upload a run's model (final/: model or adapter, processor, model card) to the Hugging Face Hub,
and optionally a Gradio demo Space that loads it from there.

    python -m voxtral_exp.push RUN_DIR --repo-id USER/NAME [--space USER/DEMO] [--public] [--dry-run]

RUN_DIR is a run directory of this project (run.json, and final/ holding the model) or its final/;
any other folder is refused. Only the model files of final/ go up (voxtral_exp.run.artifacts:
config and weights or adapter, processor and tokenizer files, the model card, base_model/ for a
LoRA adapter on a random base); never dot-files or dot-folders, never training_args.bin. A
symbolic link among them (final/ itself, base_model/, the card, a model file) is refused, naming
it, before any network: it would publish a file from outside the run. The repositories are
created private unless --public. The model card's usage code names the repository it is pushed
to; final/ itself is never changed (the card is rewritten in the upload, not on disk). The Space gets an app.py and a requirements.txt that load the model from USER/NAME.
The token comes from HF_TOKEN or `hf auth login`; it is never printed or saved. --dry-run lists
exactly what would be uploaded (model repo and Space: model_upload is the one list) and needs no
network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voxtral_exp.errors import UserError, run_command
from voxtral_exp.run.artifacts import CARD, model_files, run_final
from voxtral_exp.run.model_card import REPO, space_files


class PublishError(UserError):
    """The Hub could not be reached or refused the upload."""


def card_for(folder: Path, repo_id: str) -> bytes:
    """final/README.md with its usage code pointing at ``repo_id``."""
    return (folder / CARD).read_text(encoding="utf-8").replace(f'"{REPO}"', f'"{repo_id}"').encode()


def model_upload(folder: Path, repo_id: str) -> dict[str, Path | bytes]:
    """What goes to the model repository: each path there and what is sent to it, a file of
    ``folder`` (model_files: symbolic links refused) or, for the card, its text naming
    ``repo_id``. The one list: the dry run prints it, upload sends it."""
    files: dict[str, Path | bytes] = {name: folder / name for name in model_files(folder)}
    if CARD not in files:
        raise UserError(f"{folder} has no model card ({CARD}): is it a finished voxtral_exp run?")
    files[CARD] = card_for(folder, repo_id)
    return files


def upload(model: dict[str, Path | bytes], repo_id: str, space: str | None, demo: dict, private: bool) -> None:
    """Create the repositories (if need be) and commit ``model`` (model_upload) and the Space's
    files; Hub and network errors become a PublishError saying what happened."""
    import huggingface_hub.errors as hub_errors
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()  # token from HF_TOKEN or the stored login
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        operations = [CommitOperationAdd(name, source) for name, source in model.items()]
        info = api.create_commit(repo_id, operations, commit_message="Upload from voxtral_exp")
        print(f"model: {info.commit_url}")
        if space:
            api.create_repo(space, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            operations = [CommitOperationAdd(name, text.encode()) for name, text in demo.items()]
            info = api.create_commit(space, operations, repo_type="space", commit_message="Demo of " + repo_id)
            print(f"space: {info.commit_url}")
    except (OSError, getattr(hub_errors, "HTTPError", OSError)) as e:  # offline, no token, refused, network down
        raise PublishError(
            f"could not publish to the Hub ({type(e).__name__}: {e}). Check the network and the token (HF_TOKEN or "
            "`hf auth login`); --dry-run lists what would be uploaded without the network"
        ) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (or its final/)")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the model repository on the Hub")
    parser.add_argument("--space", help="USER/NAME of a Gradio demo Space to create for the model")
    parser.add_argument("--public", action="store_true", help="create the repositories public (default: private)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; no network")
    args = parser.parse_args(argv)
    folder = run_final(args.run_dir)
    model = model_upload(folder, args.repo_id)
    verb, visibility = ("would upload" if args.dry_run else "uploading"), ("public" if args.public else "private")
    print(f"{verb} {len(model)} files from {folder} to the {visibility} model repository {args.repo_id}:")
    for name in model:
        print(f"  {name}")
    demo = {}
    if args.space:
        from voxtral_exp.run.record import load_run_config  # torch and transformers: only for a Space

        demo = space_files(dict(load_run_config(folder.parent)), args.repo_id)
        print(f"{verb} {len(demo)} files to the {visibility} Space {args.space} (Gradio; loads {args.repo_id}):")
        for name, text in demo.items():
            print(f"  {name} ({len(text.encode())} bytes)")
    if not args.dry_run:
        upload(model, args.repo_id, args.space, demo, private=not args.public)


if __name__ == "__main__":
    run_command(main)

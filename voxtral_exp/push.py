"""Upload a run's final/ (model or adapter, processor, model card) to the Hugging Face Hub, and
optionally a Gradio demo Space that loads it from there.

    python -m voxtral_exp.push RUN_DIR --repo-id USER/NAME [--space USER/DEMO] [--private] [--dry-run]

The model card's usage code names the repository it is pushed to; final/ itself is never
changed (the card is rewritten in the upload, not on disk). The Space gets an app.py and a
requirements.txt that load the model from USER/NAME. The token comes from HF_TOKEN or
`hf auth login`; it is never printed or saved. --dry-run lists exactly what would be uploaded
(model repo and Space) and needs no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voxtral_exp.errors import UserError, run_command
from voxtral_exp.run.model_card import REPO, space_files
from voxtral_exp.run.record import final_dir, load_run_config


def files_to_upload(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def card_for(folder: Path, repo_id: str) -> bytes:
    """final/README.md with its usage code pointing at ``repo_id``."""
    return (folder / "README.md").read_text(encoding="utf-8").replace(f'"{REPO}"', f'"{repo_id}"').encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (or its final/)")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the model repository on the Hub")
    parser.add_argument("--space", help="USER/NAME of a Gradio demo Space to create for the model")
    parser.add_argument("--private", action="store_true", help="create the repositories private")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; no network")
    args = parser.parse_args(argv)
    folder = final_dir(args.run_dir.resolve())
    if not (folder / "README.md").is_file():
        raise UserError(f"{folder} has no model card: is it a finished voxtral_exp run?")
    files = files_to_upload(folder)
    verb = "would upload" if args.dry_run else "uploading"
    print(f"{verb} {len(files)} files from {folder} to the model repository {args.repo_id}:")
    for name in files:
        print(f"  {name}")
    demo = {}
    if args.space:
        run_dir = folder.parent if folder.name == "final" else folder
        demo = space_files(dict(load_run_config(run_dir)), args.repo_id)
        print(f"{verb} {len(demo)} files to the Space {args.space} (Gradio; loads {args.repo_id}):")
        for name, text in demo.items():
            print(f"  {name} ({len(text.encode())} bytes)")
    if args.dry_run:
        return
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()  # token from HF_TOKEN or the stored login
    api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    operations = [CommitOperationAdd(name, str(folder / name)) for name in files if name != "README.md"]
    operations.append(CommitOperationAdd("README.md", card_for(folder, args.repo_id)))
    info = api.create_commit(args.repo_id, operations, commit_message="Upload from voxtral_exp")
    print(f"model: {info.commit_url}")
    if demo:
        api.create_repo(args.space, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
        info = api.create_commit(
            args.space,
            [CommitOperationAdd(n, t.encode()) for n, t in demo.items()],
            repo_type="space",
            commit_message="Demo of " + args.repo_id,
        )
        print(f"space: {info.commit_url}")


if __name__ == "__main__":
    run_command(main)

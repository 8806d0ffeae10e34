"""Upload a run's final/ (model or adapter, processor, model card) to the Hugging Face Hub.

    python -m voxtral_exp.push RUN_DIR --repo-id USER/NAME [--private] [--dry-run]

The token comes from HF_TOKEN or `hf auth login`; it is never printed or saved. --dry-run
lists exactly what would be uploaded and needs no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voxtral_exp.merge import final_dir
from voxtral_exp.model_card import REPO
from voxtral_exp.run_record import write_atomic


def files_to_upload(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (or its final/)")
    parser.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; no network")
    args = parser.parse_args(argv)
    folder = final_dir(args.run_dir.resolve())
    if not (folder / "README.md").is_file():
        raise SystemExit(f"{folder} has no model card: is it a finished voxtral_exp run?")
    files = files_to_upload(folder)
    print(f"{'would upload' if args.dry_run else 'uploading'} {len(files)} files from {folder} to {args.repo_id}:")
    for name in files:
        print(f"  {name}")
    if args.dry_run:
        return
    from huggingface_hub import HfApi

    card = folder / "README.md"
    write_atomic(card, card.read_text().replace(f'"{REPO}"', f'"{args.repo_id}"'))  # usage code names the repo
    api = HfApi()  # token from HF_TOKEN or the stored login
    api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=args.repo_id, commit_message="Upload from voxtral_exp")
    print(f"done: {info}")


if __name__ == "__main__":
    main()

"""On-disk cache of the frozen audio encoder's output.

When the audio encoder does not train, its output for a clip never changes, so it is computed
once (before the first epoch) and read back afterwards: later epochs skip audio decoding, mel
features and the encoder. The projector runs on the cached states in every step, so it can
still train (method.train_projector=true). Entries are keyed by the audio's bytes (plus offset
and duration) under a folder named by a fingerprint of the encoder's weights, so changed audio
or changed weights never hit a stale entry.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from voxtral_exp.data.audio import TARGET_RATE, header_seconds
from voxtral_exp.data.example import Example
from voxtral_exp.files import atomic_path
from voxtral_exp.model.audio_path import encode_clips
from voxtral_exp.model.modeling import audio_modules
from voxtral_exp.model.tokens import audio_tokens

log = logging.getLogger(__name__)


FORMAT = 2  # entries: {"states", "samples"}; 1 held the states alone


def fingerprint(model: torch.nn.Module, encoder_window: str = "chunk") -> str:
    """Hash of every encoder weight, the encoder's config, how it reads a clip
    (`model.encoder_window`) and the entry format."""
    digest = hashlib.sha256()
    tower, _ = audio_modules(model)
    digest.update(f"format {FORMAT}, encoder window {encoder_window}".encode())
    digest.update(repr(sorted(tower.config.to_dict().items())).encode())
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def example_key(example: Example) -> str:
    """Hash of the audio content and the crop, not the path: renamed files still hit."""
    digest = hashlib.sha256()
    digest.update(example.audio if isinstance(example.audio, bytes) else Path(example.audio).read_bytes())
    digest.update(f"{example.offset}:{example.duration}".encode())
    return digest.hexdigest()


class EncoderCache:
    """Entries are {"states": the encoder's rows for the clip, as the projector reads them (375
    per 30 s chunk; with `model.encoder_window=clip` only the clip's tokens), "samples": the
    clip's length at 16 kHz, from which the prompt's token count follows}."""

    def __init__(self, folder: str | Path, model: torch.nn.Module, encoder_window: str = "chunk"):
        self.encoder_window = encoder_window
        self.folder = Path(folder).expanduser() / fingerprint(model, encoder_window)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[tuple, str] = {}  # (audio, offset, duration) -> content hash: read each file once

    def path(self, example: Example) -> Path:
        clip = (example.audio, example.offset, example.duration)
        if clip not in self._keys:
            self._keys[clip] = example_key(example)
        key = self._keys[clip]
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, example: Example) -> dict[str, Any] | None:
        path = self.path(example)
        return torch.load(path, weights_only=True) if path.exists() else None

    def put(self, example: Example, states: torch.Tensor, samples: int) -> None:
        path = self.path(example)
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:  # a killed fill never leaves half an entry
            torch.save({"states": states.detach().cpu().clone(), "samples": samples}, tmp)

    @torch.no_grad()
    def fill(
        self,
        model: torch.nn.Module,
        dataset: Dataset,
        batch_size: int,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> int:
        """Compute and store the embeddings of the examples not cached yet; returns how many.

        Under torchrun each of the ``world_size`` ranks takes every ``world_size``-th example
        (the caller waits for all ranks before training), so the pass takes 1/N of the time.
        """
        examples = dataset.examples
        # shares by index, not by what is missing: another rank may already be writing its own
        missing = [i for i in range(rank, len(examples), world_size) if not self.path(examples[i]).exists()]
        if not missing:
            return 0
        tower, _ = audio_modules(model)
        device = next(tower.parameters()).device
        subset = torch.utils.data.Subset(dataset, missing)
        loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
        window = self.encoder_window == "clip"
        done = 0
        for batch in loader:
            features = torch.cat([f["input_features"] for f in batch]).to(device)
            chunks = [f["input_features"].shape[0] for f in batch]
            lengths = [f["samples"] for f in batch]
            keep = [audio_tokens(n, "clip" if window else "chunk") for n in lengths]  # window: the clip's rows only
            states = encode_clips(tower, features, chunks, keep, window)
            for f, rows in zip(batch, states.split(keep)):
                self.put(examples[missing[done]], rows, f["samples"])
                done += 1
        log.info("Encoder cache <speed.encoder_cache>: %d new entries in %s", done, self.folder)
        return done


def chosen_folder(cfg: DictConfig, examples: list[Example], streaming: bool, model: torch.nn.Module) -> str | None:
    """`speed.encoder_cache`: a folder, null (off) or auto: on, in <paths.cache_dir>/encoder, for
    map-style data with a frozen encoder when its size (estimated and logged) fits
    `speed.encoder_cache_budget_gb` and the free disk; off for streams, where each clip is seen
    about once and a cache would cost a write per clip for nothing."""
    setting = cfg.speed.encoder_cache
    if setting != "auto":
        return setting
    frozen = cfg.method.name == "lora" or cfg.method.freeze_audio_tower
    if streaming or not frozen:
        why = "the data is streamed" if streaming else "the audio encoder trains (method.freeze_audio_tower=false)"
        log.info("Encoder cache <speed.encoder_cache=auto>: off, %s", why)
        return None
    folder = Path(cfg.paths.cache_dir).expanduser() / "encoder"
    tower, _ = audio_modules(model)
    size = estimated_bytes(examples, tower, cfg.model.encoder_window)
    budget = cfg.speed.encoder_cache_budget_gb * 1e9
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if size > min(budget, 0.9 * free):
        log.warning(
            "Encoder cache <speed.encoder_cache=auto>: off: ~%.1f GB for %d clips is more than "
            "speed.encoder_cache_budget_gb=%s or 90%% of the %.1f GB free in %s; raise the budget or set "
            "speed.encoder_cache to a folder with room",
            size / 1e9,
            len(examples),
            cfg.speed.encoder_cache_budget_gb,
            free / 1e9,
            existing,
        )
        return None
    log.info("Encoder cache <speed.encoder_cache=auto>: ~%.2f GB for %d clips in %s", size / 1e9, len(examples), folder)
    return str(folder)


def estimated_bytes(examples: list[Example], tower: torch.nn.Module, encoder_window: str) -> float:
    """Disk the cache takes for ``examples``: encoder rows (375 per chunk, or the clip's tokens
    with `model.encoder_window=clip`) x 4 x the encoder's width, in its dtype."""
    row = tower.config.intermediate_size * next(tower.parameters()).element_size()
    rows = 0
    for example in examples:
        samples = max(1, round(header_seconds(example.audio, example.offset, example.duration) * TARGET_RATE))
        rows += audio_tokens(samples, "clip" if encoder_window == "clip" else "chunk")
    return rows * row

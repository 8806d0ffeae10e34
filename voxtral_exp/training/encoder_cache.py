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
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from voxtral_exp.data.example import Example
from voxtral_exp.files import atomic_path
from voxtral_exp.model.modeling import audio_modules

log = logging.getLogger(__name__)


def fingerprint(model: torch.nn.Module) -> str:
    """Hash of every encoder weight (and the encoder's config)."""
    digest = hashlib.sha256()
    tower, _ = audio_modules(model)
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
    def __init__(self, folder: str | Path, model: torch.nn.Module):
        self.folder = Path(folder).expanduser() / fingerprint(model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[tuple, str] = {}  # (audio, offset, duration) -> content hash: read each file once

    def path(self, example: Example) -> Path:
        clip = (example.audio, example.offset, example.duration)
        if clip not in self._keys:
            self._keys[clip] = example_key(example)
        key = self._keys[clip]
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, example: Example) -> torch.Tensor | None:
        path = self.path(example)
        return torch.load(path, weights_only=True) if path.exists() else None

    def put(self, example: Example, states: torch.Tensor) -> None:
        path = self.path(example)
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:  # a killed fill never leaves half an entry
            torch.save(states.detach().cpu().clone(), tmp)

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
        dtype = next(tower.parameters()).dtype
        subset = torch.utils.data.Subset(dataset, missing)
        loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
        done = 0
        for batch in loader:
            features = torch.cat([f["input_features"] for f in batch]).to(device, dtype)
            # the projector's input: 4 consecutive frames stacked, 375 rows per 30 s chunk
            states = tower(features).last_hidden_state.reshape(-1, tower.config.intermediate_size)
            per_chunk = states.shape[0] // features.shape[0]
            start = 0
            for f in batch:
                n = f["input_features"].shape[0] * per_chunk
                self.put(examples[missing[done]], states[start : start + n])
                start += n
                done += 1
        log.info("Encoder cache <speed.encoder_cache>: %d new entries in %s", done, self.folder)
        return done

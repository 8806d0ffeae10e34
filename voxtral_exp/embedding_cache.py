"""On-disk cache of audio embeddings (encoder + projector output) for a frozen audio path.

When neither the audio encoder nor the projector trains, a clip's embeddings never change, so
they are computed once (before the first epoch) and read back afterwards: later epochs skip
audio decoding, mel features and the encoder. Entries are keyed by the audio's bytes (plus
offset and duration) under a folder named by a fingerprint of the encoder's and projector's
weights, so changed audio or changed weights never hit a stale entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from voxtral_exp.data.example import Example
from voxtral_exp.modeling import AUDIO_TOKEN_ID

log = logging.getLogger(__name__)


def audio_modules(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(audio tower, projector) of a Voxtral model, PEFT-wrapped or not."""
    voxtral = model.get_base_model() if hasattr(model, "get_base_model") else model
    return voxtral.model.audio_tower, voxtral.model.multi_modal_projector


def fingerprint(model: torch.nn.Module) -> str:
    """Hash of every encoder and projector weight (and the encoder's config)."""
    digest = hashlib.sha256()
    tower, projector = audio_modules(model)
    digest.update(repr(sorted(tower.config.to_dict().items())).encode())
    for module in (tower, projector):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def example_key(example: Example) -> str:
    """Hash of the audio content and the crop, not the path: renamed files still hit."""
    digest = hashlib.sha256()
    digest.update(example.audio if isinstance(example.audio, bytes) else Path(example.audio).read_bytes())
    digest.update(f"{example.offset}:{example.duration}".encode())
    return digest.hexdigest()


def with_audio_embeds(model: torch.nn.Module, inputs: dict) -> dict:
    """A batch with cached ``audio_embeds`` -> the same batch as ``inputs_embeds``: token
    embeddings with the audio embeddings at the [AUDIO] positions, as Voxtral's forward does."""
    inputs = dict(inputs)
    input_ids, audio = inputs.pop("input_ids"), inputs.pop("audio_embeds")
    embeddings = model.get_input_embeddings()(input_ids)
    mask = (input_ids == AUDIO_TOKEN_ID).unsqueeze(-1).expand_as(embeddings)
    inputs["inputs_embeds"] = embeddings.masked_scatter(mask, audio.to(embeddings.device, embeddings.dtype))
    return inputs


class AudioEmbeddingCache:
    def __init__(self, folder: str | Path, model: torch.nn.Module):
        self.folder = Path(folder).expanduser() / fingerprint(model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, str] = {}

    def path(self, example: Example) -> Path:
        key = self._keys.get(example.origin) or example_key(example)
        self._keys[example.origin] = key
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, example: Example) -> torch.Tensor | None:
        path = self.path(example)
        return torch.load(path, weights_only=True) if path.exists() else None

    def put(self, example: Example, embeds: torch.Tensor) -> None:
        path = self.path(example)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        torch.save(embeds.detach().cpu().clone(), tmp)
        os.replace(tmp, path)  # atomic: a killed fill never leaves half an entry

    @torch.no_grad()
    def fill(self, model: torch.nn.Module, dataset: Dataset, batch_size: int, num_workers: int) -> int:
        """Compute and store the embeddings of every example not cached yet; returns how many."""
        examples = dataset.examples
        missing = [i for i, e in enumerate(examples) if not self.path(e).exists()]
        if not missing:
            return 0
        tower, projector = audio_modules(model)
        device = next(tower.parameters()).device
        dtype = next(tower.parameters()).dtype
        subset = torch.utils.data.Subset(dataset, missing)
        loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
        done = 0
        for batch in loader:
            features = torch.cat([f["input_features"] for f in batch]).to(device, dtype)
            hidden = tower(features).last_hidden_state
            embeds = projector(hidden.reshape(-1, tower.config.intermediate_size))
            per_chunk = embeds.shape[0] // features.shape[0]
            start = 0
            for f in batch:
                n = f["input_features"].shape[0] * per_chunk
                self.put(examples[missing[done]], embeds[start : start + n])
                start += n
                done += 1
        log.info("Audio embedding cache <training.audio_embedding_cache>: %d new entries in %s", done, self.folder)
        return done

"""On-disk cache of the frozen audio encoder's output.

When the audio encoder does not train, its output for a clip never changes, so it is computed
once (before the first epoch) and read back afterwards: later epochs skip audio decoding, mel
features and the encoder. The projector runs on the cached states in every step, so it can
still train (method.train_projector=true). Entries are keyed by the audio's bytes (plus offset
and duration) under a folder named by a fingerprint of the encoder's weights, so changed audio
or changed weights never hit a stale entry. An entry that cannot be read (cut short, or a file
planted in the cache) is a miss: logged, and computed again by the next fill.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from voxtral_exp.data.audio import TARGET_RATE, header_seconds
from voxtral_exp.data.example import Example
from voxtral_exp.files import atomic_path
from voxtral_exp.model.audio_path import encode_clips
from voxtral_exp.model.modeling import audio_modules
from voxtral_exp.model.tokens import audio_tokens

if TYPE_CHECKING:
    from voxtral_exp.data.dataset import SpeechDataset
    from voxtral_exp.data.sources import Data

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
        self.width = audio_modules(model)[0].config.intermediate_size  # an entry's row width
        self.folder = Path(folder).expanduser() / fingerprint(model, encoder_window)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[tuple, str] = {}  # (file path, offset, duration) -> content hash: read each file once

    def path(self, example: Example) -> Path:
        if isinstance(example.audio, bytes):  # hashed again each time: as a key, the bytes would hold every clip
            key = example_key(example)
        else:
            clip = (example.audio, example.offset, example.duration)
            if clip not in self._keys:
                self._keys[clip] = example_key(example)
            key = self._keys[clip]
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, example: Example) -> dict[str, Any] | None:
        """The clip's entry; None when it has none or it cannot be read."""
        return self.read(self.path(example))

    def holds(self, example: Example) -> bool:
        """Whether the clip has a readable entry, checked without reading its tensors."""
        return self.read(self.path(example), mmap=True) is not None

    def read(self, path: Path, mmap: bool = False) -> dict[str, Any] | None:
        """The entry at ``path``, or None: missing, or unreadable (logged with its path). Never
        unpickled beyond tensors and numbers (weights_only), whatever torch's message suggests.
        ``mmap``: check it without reading its tensors (the fill checks every entry)."""
        if not path.exists():
            return None
        try:
            entry = torch.load(path, weights_only=True, mmap=mmap)
            if not (isinstance(entry, dict) and isinstance(entry.get("states"), torch.Tensor) and "samples" in entry):
                raise ValueError("not an entry of this cache")
            rows = audio_tokens(int(entry["samples"]), "clip" if self.encoder_window == "clip" else "chunk")
            if tuple(entry["states"].shape) != (rows, self.width):  # planted, or another encoder's
                raise ValueError(f"states of shape {tuple(entry['states'].shape)}, not ({rows}, {self.width})")
        except Exception as e:  # noqa: BLE001 - cut short, planted, another format: a miss either way
            log.warning(
                "Encoder cache: unreadable entry %s (%s: %s): a miss, computed again", path, type(e).__name__, e
            )
            return None
        return entry

    def put(self, example: Example, states: torch.Tensor, samples: int) -> None:
        path = self.path(example)
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:  # a killed fill never leaves half an entry
            torch.save({"states": states.detach().cpu().clone(), "samples": samples}, tmp)

    @torch.no_grad()
    def fill(
        self,
        model: torch.nn.Module,
        dataset: SpeechDataset,
        batch_size: int,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> int:
        """Compute and store the entries of the examples not cached yet (or unreadable); returns
        how many it wrote. A clip whose audio fails to decode (dataset.on_error=skip) gets none:
        training skips it as it does without the cache, in this run and every later one.

        Only the audio tower goes to ``device`` for the pass, and back after it: the Trainer or
        FSDP places the whole model later (a 24B model in fp32 fits no single GPU).

        Under torchrun each of the ``world_size`` ranks takes every ``world_size``-th example
        (the caller waits for all ranks before training), so the pass takes 1/N of the time.
        """
        examples = dataset.examples
        # shares by index, not by what is missing: another rank may already be writing its own
        share = range(rank, len(examples), world_size)
        missing = [i for i in share if not self.holds(examples[i])]
        if not missing:
            return 0
        tower, _ = audio_modules(model)
        home = next(tower.parameters()).device
        device = device or home
        decode = functools.partial(_decoded, dataset)  # in the loader's workers
        loader = DataLoader(missing, batch_size=batch_size, num_workers=num_workers, collate_fn=decode)
        window = self.encoder_window == "clip"
        done = failed = 0
        tower.to(device)
        try:
            for batch in loader:
                decoded = [(i, f) for i, f in batch if f is not None]
                failed += len(batch) - len(decoded)
                if not decoded:
                    continue
                features = torch.cat([f["input_features"] for _, f in decoded]).to(device)
                chunks = [f["input_features"].shape[0] for _, f in decoded]
                lengths = [f["samples"] for _, f in decoded]
                keep = [audio_tokens(n, "clip" if window else "chunk") for n in lengths]  # window: the clip's rows only
                states = encode_clips(tower, features, chunks, keep, window)
                for (i, f), rows in zip(decoded, states.split(keep)):
                    self.put(examples[i], rows, f["samples"])
                    done += 1
        finally:
            tower.to(home)
        log.info("Encoder cache <speed.encoder_cache>: %d new entries in %s", done, self.folder)
        if failed:
            log.warning(
                "Encoder cache: no entry for %d clip(s) whose audio failed to decode (skipped in training, as "
                "without the cache)",
                failed,
            )
        return done


def _decoded(dataset: SpeechDataset, indices: list[int]) -> list[tuple[int, dict[str, Any] | None]]:
    """(index, features) of each example; None for a clip whose audio fails to decode."""
    return [(i, dataset.features(i)) for i in indices]


def chosen_folder(cfg: DictConfig, data: Data, model: torch.nn.Module) -> str | None:
    """`speed.encoder_cache`: a folder, null (off) or auto: on, in <paths.cache_dir>/encoder, for
    map-style data with a frozen encoder when its size (estimated and logged) fits
    `speed.encoder_cache_budget_gb` and the free disk; off for streams, where each clip is seen
    about once and a cache would cost a write per clip for nothing."""
    setting = cfg.speed.encoder_cache
    if setting != "auto":
        return setting
    frozen = cfg.method.name == "lora" or cfg.method.freeze_audio_tower
    if data.streaming or not frozen:
        why = "the data is streamed" if data.streaming else "the audio encoder trains (method.freeze_audio_tower=false)"
        log.info("Encoder cache <speed.encoder_cache=auto>: off, %s", why)
        return None
    folder = Path(cfg.paths.cache_dir).expanduser() / "encoder"
    tower, _ = audio_modules(model)
    clips = len(data.train) + len(data.eval)
    size = estimated_bytes(itertools.chain(data.train, data.eval), tower, cfg.model.encoder_window)
    budget = cfg.speed.encoder_cache_budget_gb * 1e9
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if size > min(budget, 0.9 * free):
        log.warning(
            "Encoder cache <speed.encoder_cache=auto>: off: ~%.1f GB for %d clips is more than "
            "speed.encoder_cache_budget_gb=%s or 90%% of the %.1f GB free in %s; raise the budget or set "
            "speed.encoder_cache to a folder with room",
            size / 1e9,
            clips,
            cfg.speed.encoder_cache_budget_gb,
            free / 1e9,
            existing,
        )
        return None
    log.info("Encoder cache <speed.encoder_cache=auto>: ~%.2f GB for %d clips in %s", size / 1e9, clips, folder)
    return str(folder)


def estimated_bytes(examples: Iterable[Example], tower: torch.nn.Module, encoder_window: str) -> float:
    """Disk the cache takes for ``examples``: encoder rows (375 per chunk, or the clip's tokens
    with `model.encoder_window=clip`) x 4 x the encoder's width, in its dtype. Each clip's length
    comes from its row or its file's header, one clip at a time (Hub rows carry their audio)."""
    row = tower.config.intermediate_size * next(tower.parameters()).element_size()
    rows = 0
    for example in examples:
        samples = max(1, round(header_seconds(example.audio, example.offset, example.duration) * TARGET_RATE))
        rows += audio_tokens(samples, "clip" if encoder_window == "clip" else "chunk")
    return rows * row

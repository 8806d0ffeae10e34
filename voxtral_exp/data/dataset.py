"""Map-style torch dataset: examples in memory, audio decoded and featurised on access."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from voxtral_exp.collator import Featurizer
from voxtral_exp.data.audio import AudioError
from voxtral_exp.data.example import Example


class SpeechDataset(Dataset):
    """Featurises ``examples[i]`` when the DataLoader (worker) asks for it."""

    def __init__(self, examples: list[Example], featurizer: Featurizer):
        self.examples = examples
        self.featurizer = featurizer

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        try:
            return self.featurizer(example)
        except (AudioError, FileNotFoundError) as e:
            raise AudioError(f"{example.origin}: {e}") from e

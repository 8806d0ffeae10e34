"""The reference pipeline (the hand-written script voxtral_exp replaces), re-implemented as
its authors described it, for side-by-side benchmarks: the processor is called per batch inside
the collator, the language is hard-coded to English, and the whole prompt + text sequence is
tokenised there.
"""

from __future__ import annotations

import torch

from voxtral_exp.data.audio import load_audio


class ReferenceCollator:
    def __init__(self, processor, model_id: str = "offline"):
        self.processor = processor
        self.model_id = model_id
        self.pad_id = processor.tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        audios = [load_audio(r["audio"]) for r in rows]
        prompt = self.processor.apply_transcription_request(
            language="en",
            audio=audios,
            format=["WAV"] * len(audios),
            model_id=self.model_id,
            sampling_rate=16000,
        )
        prompt_ids = [ids[mask.bool()] for ids, mask in zip(prompt["input_ids"], prompt["attention_mask"])]
        texts = [self.processor.tokenizer.encode(r["text"], add_special_tokens=False) for r in rows]
        sequences = [torch.cat([p, torch.tensor(t)]) for p, t in zip(prompt_ids, texts)]  # no EOS (its defect)
        length = max(len(s) for s in sequences)
        input_ids = torch.full((len(rows), length), self.pad_id)
        labels = torch.full((len(rows), length), -100)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (p, s) in enumerate(zip(prompt_ids, sequences)):
            input_ids[i, : len(s)] = s
            labels[i, len(p) : len(s)] = s[len(p) :]
            attention[i, : len(s)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "input_features": prompt["input_features"],
        }


class RowsDataset(torch.utils.data.Dataset):
    """Rows as the reference's collator receives them (audio still encoded)."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        e = self.examples[i]
        return {"audio": e.audio, "text": e.text}

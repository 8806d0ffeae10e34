"""The Voxtral model: its facts, building it, the fine-tuning methods, its processor."""

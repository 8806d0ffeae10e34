"""The end-of-run summary: what a run learned, in words, as the log's last lines."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig


def run_summary(
    history: list[dict], eval_metrics: dict, predictions: list[dict], run_dir: Path, cfg: DictConfig
) -> str:
    """What a run learned, in words: loss before and after, WER, a few transcripts, where to look."""
    losses = [(e["step"], e["loss"]) for e in history if "loss" in e]
    lines = [f"Summary of <{run_dir}>:"]
    if losses:
        (first_step, first), (last_step, last) = losses[0], losses[-1]
        change = 100 * (1 - last / first) if first > 0 else 0.0
        lines.append(
            f"  training loss {first:.3f} (step {first_step}) -> {last:.3f} (step {last_step}): "
            f"{abs(change):.0f}% {'lower' if change >= 0 else 'higher'}"
        )
    if "eval_loss" in eval_metrics:
        lines.append(f"  eval loss {eval_metrics['eval_loss']:.3f} (perplexity {eval_metrics['eval_perplexity']:.4g})")
    if "eval_wer" in eval_metrics:
        before = next((e["eval_wer"] for e in history if "eval_wer" in e and e.get("step") == 0), None)
        start = f"{before:.3f} before training -> " if before is not None else ""
        lines.append(
            f"  eval WER {start}{eval_metrics['eval_wer']:.3f} after (CER {eval_metrics['eval_cer']:.3f}; "
            f"{len(predictions)} clips, predictions.jsonl)"
        )
    for p in predictions[:4]:
        lines.append(f"    reference:  {p['reference']}\n    hypothesis: {p['hypothesis']}")
    lines.append(
        f"  run directory: {run_dir} (final/ holds the model: python -m voxtral_exp.transcribe {run_dir} clip.wav)"
    )
    if cfg.tracking.enabled:
        trackio_dir = os.environ.get("TRACKIO_DIR")
        lines.append(
            f"  dashboard: {f'TRACKIO_DIR={trackio_dir} ' if trackio_dir else ''}trackio show --project "
            f"{cfg.tracking.project} (run {cfg.tracking.name})"
        )
    return "\n".join(lines)

"""The one text convention for targets, generation and scoring."""

from __future__ import annotations


def normalize_transcript(text: str) -> str:
    """No surrounding spaces, single spaces between words.

    Tekken tokenises "hello" and " hello" differently; the target is always the stripped text,
    and decoded generations are stripped the same way before scoring.
    """
    return " ".join(text.split())

"""How a model reads audio (`model.audio_tokens`, `model.encoder_window`), kept in the model's own
files.

The rule lives in the processor's ``processor_config.json``, beside the feature extractor's
settings (``"feature_extractor": {"audio_tokens": ..., "encoder_window": ...}``): every model
folder holds that file (a full model, a LoRA adapter, a merged model, a checkpoint, a Hub
repository), and the processor's ``save_pretrained``/``from_pretrained`` carry it, so merge, push,
the card's code, the Space, transcribe and the app read the same rule. A processor without it is
Voxtral's own (chunk). Runs saved before 2026-12 kept it in ``final/audio.json``: still read.

The rule cannot go into ``tekken.json``: mistral-common's ``AudioConfig`` rejects unknown keys,
and its ``chunk_length_s`` cannot state clip tokens (see voxtral_exp.export).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voxtral_exp.errors import UserError
from voxtral_exp.model.tokens import AUDIO_TOKEN_MODES

LEGACY_FILE = "audio.json"  # final/audio.json of runs saved before 2026-12


class AudioRuleError(UserError):
    """A saved model whose audio rule cannot be read: never guessed."""


@dataclass(frozen=True)
class AudioRule:
    """`model.audio_tokens`: chunk (375 [AUDIO] tokens per started 30 s chunk, Voxtral's own) or
    clip (the tokens that cover the clip); `model.encoder_window`: chunk (the encoder on whole 30 s
    chunks) or clip (on the clip's own frames; needs clip tokens)."""

    audio_tokens: str = "chunk"
    encoder_window: str = "chunk"

    def __post_init__(self) -> None:
        for key in ("audio_tokens", "encoder_window"):
            if getattr(self, key) not in AUDIO_TOKEN_MODES:
                raise AudioRuleError(f"model.{key}={getattr(self, key)!r}: expected one of {AUDIO_TOKEN_MODES}")
        if self.encoder_window == "clip" and self.audio_tokens != "clip":
            raise AudioRuleError("model.encoder_window=clip needs model.audio_tokens=clip")

    @property
    def window(self) -> bool:
        """Whether the encoder runs on each clip's own frames."""
        return self.encoder_window == "clip"

    @property
    def is_voxtrals_own(self) -> bool:
        return self == AudioRule()

    @classmethod
    def of(cls, model_cfg: Any) -> AudioRule:
        """The rule the `model` config node asks for."""
        return cls(model_cfg.audio_tokens, model_cfg.encoder_window)

    def describe(self) -> str:
        return f"model.audio_tokens={self.audio_tokens} model.encoder_window={self.encoder_window}"


def save_rule(processor: Any, rule: AudioRule) -> None:
    """Put ``rule`` in ``processor``: every later ``processor.save_pretrained`` (checkpoints,
    final/, merge) writes it into processor_config.json."""
    for key, value in asdict(rule).items():
        setattr(processor.feature_extractor, key, value)


def read_rule(processor: Any, source: str | Path) -> AudioRule:
    """The rule saved with the model at ``source`` (a folder or a Hub id) whose processor is
    ``processor``: from its processor_config.json, else a legacy final/audio.json, else Voxtral's
    own. A rule that is there but unreadable raises, naming the file."""
    saved = {key: getattr(processor.feature_extractor, key) for key in asdict(AudioRule()) if _has(processor, key)}
    where = f"{source}: processor_config.json (feature_extractor)"
    if not saved:
        saved, where = _legacy(source), f"{source}/{LEGACY_FILE}"
    if len(saved) == 1:
        raise AudioRuleError(f"{where} holds {saved} but not both audio_tokens and encoder_window: the rule is cut")
    try:
        return AudioRule(**saved)
    except (AudioRuleError, TypeError) as e:
        raise AudioRuleError(f"{where}: {e} (a typo, or a rule of a newer voxtral_exp?)") from None


def _has(processor: Any, key: str) -> bool:
    return key in vars(processor.feature_extractor)


def _legacy(source: str | Path) -> dict[str, str]:
    """final/audio.json of an earlier voxtral_exp, local or on the Hub; {} when there is none. A
    file that is there must hold the rule."""
    path = Path(source) / LEGACY_FILE if Path(source).exists() else _hub_legacy_file(str(source))
    if path is None or not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        rule = {key: saved[key] for key in ("audio_tokens", "encoder_window") if key in saved}
    except (OSError, ValueError, TypeError) as e:
        raise AudioRuleError(
            f"{path}: unreadable ({type(e).__name__}: {e}); it says how the model reads audio"
        ) from None
    if not rule:
        raise AudioRuleError(f"{path} holds no audio_tokens or encoder_window: it says how the model reads audio")
    return rule


def _hub_legacy_file(repo: str) -> Path | None:
    """A Hub model's audio.json (pushed by voxtral_exp before 2026-12), or None: the Hub (or the
    local cache, offline) says it has none, or the cached model card is not voxtral_exp's."""
    from huggingface_hub import _CACHED_NO_EXIST, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import RemoteEntryNotFoundError

    cached = try_to_load_from_cache(repo, LEGACY_FILE)
    if cached is _CACHED_NO_EXIST:
        return None
    if isinstance(cached, str):
        return Path(cached)
    try:
        return Path(hf_hub_download(repo, LEGACY_FILE))
    except RemoteEntryNotFoundError:  # the Hub says there is none
        return None
    except Exception as e:  # noqa: BLE001 - offline or refused: the rule cannot be known from the Hub
        card = try_to_load_from_cache(repo, "README.md")
        if isinstance(card, str) and "voxtral_exp" not in Path(card).read_text(encoding="utf-8", errors="replace"):
            return None  # a model voxtral_exp never pushed (e.g. Mistral's own): no audio.json to look for
        raise AudioRuleError(
            f"cannot tell how {repo} reads audio: its processor_config.json has no rule and {LEGACY_FILE} could not "
            f"be looked up ({type(e).__name__}: {e}). Run once with the network, or give a local copy"
        ) from None

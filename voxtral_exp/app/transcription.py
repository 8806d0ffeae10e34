"""The one place the app transcribes: voxtral_exp.inference, the code path of
`python -m voxtral_exp.transcribe`, with the last loaded model kept in memory for the next clip."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from voxtral_exp.app.errors import FieldError

if TYPE_CHECKING:
    import torch

    from voxtral_exp.data.featurize import Featurizer


@functools.lru_cache(maxsize=1)  # one model in memory at a time
def loaded(model: str) -> tuple[torch.nn.Module, Featurizer]:
    """``model`` (run directory, final/ or Hub id) and its featurizer, on the GPU if there is one."""
    from voxtral_exp.inference import load

    return load(model)


def transcribe_clip(model: str, audio: str | None, language: str | None) -> str:
    """The transcript of one clip with ``model`` (run directory, final/ or Hub id)."""
    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.languages import language_code
    from voxtral_exp.inference import transcribe

    if not model:
        raise FieldError("pick a run (or type a Hub model id) first")
    if not audio:
        raise FieldError("record a clip or upload a file first")
    code = language_code(language)  # a bad one is refused before the model loads
    try:
        network, featurizer = loaded(model)
    except OSError as e:  # no such folder or Hub repository, no network
        raise FieldError(f"cannot load the model {model}: {e}") from None
    return transcribe(network, featurizer, [load_audio(audio)], [code], max_new_tokens=128)[0]

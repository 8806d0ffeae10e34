"""Language codes for Voxtral's transcription prompt (`lang:xx`).

The prompt takes an ISO 639-1 code: that is what mistral-common's ``TranscriptionRequest``
validates (``LanguageAlpha2``, through pycountry). Datasets spell languages many ways: FLEURS
has ``lang_id`` ClassLabels such as ``fr_fr``, VoxPopuli ``en_accented``, Granary manifests
``source_lang`` codes, others plain names ("French"). ``language_code`` maps each
unambiguous spelling to its ISO 639-1 code and refuses the rest with the list of codes Voxtral
was trained on.
"""

from __future__ import annotations

import math
import re

import pycountry

from voxtral_exp.errors import UserError

# Voxtral's languages (mistralai/Voxtral-Mini-3B-2507 model card). Any other ISO 639-1 code is
# accepted by the prompt and can be fine-tuned; the model has just not been trained on it.
VOXTRAL_LANGUAGES = ("en", "es", "fr", "pt", "hi", "de", "nl", "it")
SUPPORTED = (
    f"Voxtral is trained on {', '.join(VOXTRAL_LANGUAGES)}, and any other ISO 639-1 code "
    "(e.g. 'cs', 'pl') can be fine-tuned"
)


class LanguageError(UserError, ValueError):
    """A language value that is not an ISO 639-1 code and cannot be mapped to one."""


def language_code(value: object) -> str | None:
    """ISO 639-1 code for ``value``; None for a missing value (null, "", NaN).

    Accepts codes in any case ("FR"), locale or variant forms whose first part is a code
    ("fr_fr", "fr-FR", "en_accented", "pt_br"), three-letter codes with a two-letter
    equivalent ("fra"), and English language names ("French").
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str):
        raise LanguageError(f"language {value!r} is a {type(value).__name__}, not a language code; {SUPPORTED}")
    text = value.strip()
    if not text or text.lower() in ("none", "null", "nan"):
        return None
    head = re.split(r"[_\-\s]", text.lower(), maxsplit=1)[0]
    for lookup in ({"alpha_2": head}, {"alpha_3": head}, {"name": text}):
        try:
            found = pycountry.languages.get(**lookup)
        except (KeyError, LookupError):
            found = None
        if found is not None and getattr(found, "alpha_2", None):
            return found.alpha_2
    raise LanguageError(
        f"language {value!r} is not an ISO 639-1 code (nor a locale or name that maps to one); {SUPPORTED}"
    )

"""How the app reports a problem the user can fix: a UserError raised by a handler (or by the
framework it calls) becomes a `gr.Error`, shown in the page as a message, with no traceback in the
page or the app's log."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import TypeVar

from voxtral_exp.errors import UserError

Handler = TypeVar("Handler", bound=Callable)


class FieldError(UserError, ValueError):
    """A form value that cannot be used; the message names the field and what to do."""


def user_errors(handler: Handler) -> Handler:
    """Decorate an event handler: a UserError it raises is shown to the user as a `gr.Error`."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return handler(*args, **kwargs)
        except UserError as e:
            # gr.Error renders HTML: show the text; the user's mistake is no traceback in the app's log
            raise gr.Error(html.escape(str(e), quote=False), print_exception=False) from None

    return wrapper  # type: ignore[return-value]

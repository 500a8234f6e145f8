"""How a jsonschema error is told: at its deepest relevant place, in a message of bounded size.

Under `anyOf` or `oneOf` jsonschema reports the whole value the branches were tried on, with a
message holding its repr (for the top of a document, the whole document). `best_match` goes
down into the branches' errors to the most relevant one, but stops where two are as relevant as
each other; errors that say the same thing at the same place (one field wrong in every branch
alike) are one fault, not a choice, so the descent goes on through them.
"""

from __future__ import annotations

import reprlib

from jsonschema.exceptions import ValidationError, best_match, relevance

MAX_MESSAGE = 400
"""The most characters of a fault's message; the values it quotes are cut much shorter."""

_SHORT = reprlib.Repr()  # its keyword arguments are Python 3.12's
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 60, 60


def deepest(error: ValidationError) -> ValidationError:
    """The error jsonschema finds most relevant beneath `error`."""
    best = best_match([error])
    while best is not None and best.context:
        least = min(best.context, key=relevance)
        ties = [e for e in best.context if relevance(e) == relevance(least)]
        if any(_said(e) != _said(least) for e in ties):
            break  # branches that disagree: the error above them is the fault
        best = least
    return best if best is not None else error


def message(error: ValidationError) -> str:
    """The error's message, the instance it quotes cut short and the whole bounded."""
    text = error.message
    whole = repr(error.instance)
    if len(whole) > _SHORT.maxother:
        text = text.replace(whole, _SHORT.repr(error.instance))
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _said(error: ValidationError) -> tuple[tuple[object, ...], str]:
    return tuple(error.absolute_path), error.message

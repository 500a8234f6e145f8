"""Where a part of a flow was made: the Python file and line of the call that built it.

A fault found when the flow is checked names this place, not a line of meta's own code: the
first frame outside `meta.builder` (and outside the `__init__` that dataclasses write for it) is
the caller's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from meta.flow.files import display_path

_OWN = "meta.builder"


@dataclass(frozen=True)
class Made:
    """The file and line of the call that made a part."""

    file: str
    line: int

    def __str__(self) -> str:
        path = Path(self.file)
        shown = display_path(path) if path.is_absolute() else self.file
        return f"{shown}:{self.line}"


def caller() -> Made:
    """Where the code that called into `meta.builder` is."""
    frame = sys._getframe(1)
    while frame.f_back is not None and _is_own(frame.f_globals.get("__name__")):
        frame = frame.f_back
    return Made(frame.f_code.co_filename, frame.f_lineno)


def _is_own(module: object) -> bool:
    return isinstance(module, str) and (module == _OWN or module.startswith(_OWN + "."))

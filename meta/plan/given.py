"""Inputs given on the command line: `--set NAME=VALUE`, `--set NAME=@FILE`.

A VALUE is read as YAML data (so `n=3` is a number, `tags=[a, b]` a list, `mode=slow` a
string); `@FILE` names a file. An input the flow declares with a file default keeps the older
form: `--set NAME=FILE` names a file there too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from meta.errors import Fault, InputFault, UserError
from meta.flow.files import parse_yaml_data
from meta.flow.model import FileInput, Input, InputDeclaration, ValueInput

SOURCE = "--set"
"""How faults name the command line."""


def parse_sets(texts: Iterable[str]) -> dict[str, str]:
    """NAME -> the text after '=', for each `--set`; a malformed one is a UserError."""
    given: dict[str, str] = {}
    for text in texts:
        name, sep, rest = text.partition("=")
        if not sep or not name:
            reason = f"{text[:60]!r}: expected NAME=VALUE or NAME=@FILE"
            raise UserError(Fault(SOURCE, "", reason))
        if name in given:
            raise UserError(Fault(SOURCE, f"/{name}", f"input '{name}' is set twice"))
        given[name] = rest
    return given


def bind(name: str, text: str, declared: InputDeclaration | None) -> Input:
    """The input `--set NAME=TEXT` gives, for an input declared as `declared`."""
    if text.startswith("@") or isinstance(getattr(declared, "default", None), FileInput):
        path = text[1:] if text.startswith("@") else text
        if not path:
            raise InputFault(Fault(SOURCE, f"/{name}", "'@' names no file"))
        return FileInput(Path(path).resolve())
    try:
        return ValueInput(parse_yaml_data(text, SOURCE, InputFault))
    except InputFault as exc:
        # The text is read as YAML (so `3` is a number): a text meant as a string that YAML
        # reads otherwise (`{{ x }}`, `a: b`, `[x`) needs quotes, which the fault says.
        hint = f" (to give it as a string, quote it: {name}='\"...\"')"
        faults = [
            Fault(SOURCE, f"/{name}{f.pointer}", f"input '{name}': {f.reason}{hint}")
            for f in exc.faults
        ]
        raise InputFault(faults) from None

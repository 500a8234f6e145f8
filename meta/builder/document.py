"""A whole flow made in Python, and its document: checked by the flow layer's own validation, with
every fault moved to the Python line that made the part at fault.

The document is rendered once per call, walking the parts; each part's JSON pointer is noted with
the line that made it, so a fault at `/spec/root/units/1/run/command` names the line of the
second unit of the root.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from meta.builder.parts import (
    Defaults,
    Entries,
    Input,
    Limits,
    Part,
    Unit,
    listed,
    present,
)
from meta.builder.where import Made
from meta.errors import Fault, FlowInvalid, pointer
from meta.flow.dump import dump_flow
from meta.flow.model import API_VERSION, KIND, Cases, Origin, Section
from meta.flow.model import Flow as TypedFlow
from meta.flow.model import Unit as TypedUnit
from meta.flow.parse import flow_from_document

Places = dict[str, Made]
"""JSON pointer of a part -> where it was made."""


@dataclass(frozen=True, kw_only=True)
class Flow(Part):
    """A flow program made in Python; made by `meta.builder.flow`."""

    name: str
    root: Unit
    inputs: Mapping[str, Input] | None = None
    defaults: Defaults | None = None
    limits: Limits | None = None
    parallelism: int | None = None
    namespace: str | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    finally_: tuple[Unit, ...] = ()

    def entries(self) -> Entries:
        metadata = present(
            ("name", self.name),
            ("namespace", self.namespace),
            ("labels", self.labels),
            ("annotations", self.annotations),
        )
        spec = present(
            ("inputs", self.inputs),
            ("defaults", self.defaults),
            ("limits", self.limits),
            ("parallelism", self.parallelism),
            ("root", self.root),
            ("finally", listed(self.finally_)),
        )
        return [
            ("apiVersion", API_VERSION),
            ("kind", KIND),
            ("metadata", dict(metadata)),
            ("spec", dict(spec)),
        ]

    def to_dict(self, *, validate: bool = True) -> dict[str, Any]:
        """The flow document (plain dicts and lists, keys in the order YAML shows them),
        checked as `meta validate` checks a file unless `validate` is False; a fault is a
        `FlowInvalid` naming the Python line that made the part at fault."""
        document, places = self._rendered()
        if validate:
            self._checked(document, places, self._source())
        return document

    def to_yaml(self) -> str:
        """The flow as a YAML flow file (checked as `to_dict` checks it)."""
        return dump_flow(self.to_dict())

    def to_flow(self, source: Path | None = None) -> TypedFlow:
        """The typed flow meta runs, as if its YAML were the file `source` (the Python file
        that made it when not given): relative input and flowRef paths resolve against its
        folder. Each unit's origin names the line that made it, so a fault found later (a
        template that fails for an item, a flowRef's file) names that line too."""
        document, places = self._rendered()
        typed = self._checked(document, places, (source or self._source()).resolve())
        return replace(
            typed,
            root=_unit_at(typed.root, places, self.made),
            final=tuple(_unit_at(last, places, self.made) for last in typed.final),
            made_of=hashlib.sha256(
                json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest(),
        )

    def _source(self) -> Path:
        return Path(self.made.file)

    def _rendered(self) -> tuple[dict[str, Any], Places]:
        places: Places = {}
        document: dict[str, Any] = render(self, (), places)
        return document, places

    def _checked(self, document: dict[str, Any], places: Places, source: Path) -> TypedFlow:
        try:
            not_json = _not_json(document)
            if not_json is not None:
                raise FlowInvalid(Fault(str(self.made), *not_json))
            return flow_from_document(document, source, file=str(self.made))
        except FlowInvalid as exc:
            raise FlowInvalid(
                [_located(fault, places, self.made) for fault in exc.faults]
            ) from None


def render(value: Any, at: tuple[str | int, ...], places: Places) -> Any:
    """`value` as plain JSON-like data; every part's pointer noted in `places`."""
    if isinstance(value, Part):
        places[pointer(at)] = value.made
        return {key: render(item, (*at, key), places) for key, item in value.entries()}
    if isinstance(value, Mapping):
        return {key: render(item, (*at, key), places) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, (*at, index), places) for index, item in enumerate(value)]
    if isinstance(value, PurePath):
        return value.as_posix()
    return value


def _not_json(document: Any) -> tuple[str, str] | None:
    """The pointer of the first value JSON cannot carry (a set, an object, NaN), and what it
    is; None when every value is JSON. A YAML file cannot hold them either (see
    meta.steps.yamlnodes); a Python value can."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return pointer(at), f"a key that is not a string ({key!r}) is not JSON"
                stack.append((item, (*at, key)))
        elif isinstance(value, list):
            stack.extend((item, (*at, index)) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            return pointer(at), "not a finite number (NaN and infinities are not JSON)"
        elif value is not None and not isinstance(value, str | int | float):
            return pointer(at), f"a value of type {type(value).__name__} is not JSON"
    return None


def _place(at: str, places: Places, fallback: Made) -> str:
    """The line that made the innermost part holding the JSON pointer `at`."""
    while at not in places and at:
        at = at[: at.rfind("/")]
    return str(places.get(at, fallback))


def _located(fault: Fault, places: Places, fallback: Made) -> Fault:
    return Fault(_place(fault.pointer, places, fallback), fault.pointer, fault.reason)


def _unit_at(unit: TypedUnit, places: Places, fallback: Made) -> TypedUnit:
    """The typed unit, and every unit in it, with its origin's file the line that made it."""
    origin = Origin(_place(unit.origin.pointer, places, fallback), unit.origin.pointer)
    if not isinstance(unit, Section):
        return replace(unit, origin=origin)
    visit = unit.visit
    if isinstance(visit, Cases):
        visit = Cases(
            tuple(
                replace(
                    case,
                    origin=Origin(
                        _place(case.origin.pointer, places, fallback), case.origin.pointer
                    ),
                    unit=_unit_at(case.unit, places, fallback),
                )
                for case in visit.cases
            )
        )
    elif visit is not None:
        visit = _unit_at(visit, places, fallback)
    return replace(
        unit,
        origin=origin,
        units=tuple(_unit_at(child, places, fallback) for child in unit.units),
        ring=tuple(_unit_at(member, places, fallback) for member in unit.ring),
        gather=None if unit.gather is None else _unit_at(unit.gather, places, fallback),
        final=tuple(_unit_at(last, places, fallback) for last in unit.final),
        visit=visit,
    )

"""Hints beside an unmodified schema: `NAME.meta.yaml` (or `.meta.yml`, `.meta.json`) next to
`NAME.schema.json` (or `NAME.json`) maps JSON pointers into the schema to `x-meta` objects, as if
each were written inline at that place. People cannot edit a vendor's schema; they can add a file.

    # github-workflow.meta.yaml
    /properties/jobs:
      entries: {dependsOn: needs, each: steps}
    /definitions/step:
      run: {command: [python3, step.py, "{{ item.name }}"]}

`""` (or `/`) is the root. The x-meta objects are checked like inline ones, and a fault in one
names the overlay file and the JSON pointer inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meta.errors import Fault, UserError, lookup, pointer
from meta.flow.files import display_path, parse_json, parse_yaml_data, read_text

if TYPE_CHECKING:
    from .schema_model import Schema

SUFFIXES = (".meta.yaml", ".meta.yml", ".meta.json")


@dataclass
class Overlay:
    file: str
    entries: dict[str, Any]
    """The overlay's keys (as written) -> x-meta objects."""

    def places(self) -> Iterator[tuple[str, str]]:
        """(key as written, pointer into the schema it names)."""
        for key in self.entries:
            yield key, "" if key == "/" else key

    def attach(self, schema: Schema) -> Iterator[Fault]:
        """Put each x-meta object on the subschema its key names; a key naming no subschema,
        or a place with inline x-meta already, is a fault."""
        for key, where in self.places():
            at = pointer([key])
            if where and not where.startswith("/"):
                yield Fault(self.file, at, f"'{key}' is not a JSON pointer (they start with /)")
                continue
            if where not in schema.nodes:
                try:
                    found = lookup(schema.document, where)
                except LookupError:
                    found = None
                if not isinstance(found, dict):
                    yield Fault(self.file, at, f"'{key}' points at no subschema of {schema.file}")
                    continue
                schema.nodes[where] = found
            if "x-meta" in schema.nodes[where]:
                yield Fault(
                    self.file, at, f"{schema.file} has x-meta at '{key}' already: keep one of them"
                )
                continue
            schema.x_meta[where] = self.entries[key]

    def place(self, where: str) -> str | None:
        """The pointer inside the overlay of a place `where` inside x-meta that it gave."""
        best: tuple[int, str] | None = None
        for key, target in self.places():
            prefix = target + "/x-meta"
            if (where == prefix or where.startswith(prefix + "/")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), pointer([key]) + where[len(prefix) :])
        return None if best is None else best[1]


def overlay_path(schema_path: Path, stem: str) -> Path | None:
    """The overlay beside the schema, if there is one."""
    for suffix in SUFFIXES:
        candidate = schema_path.parent / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_overlay(schema_path: Path, stem: str) -> Overlay | None:
    path = overlay_path(schema_path, stem)
    if path is None:
        return None
    file = display_path(path)
    text = read_text(path)
    document = parse_json(text, file) if path.suffix == ".json" else parse_yaml_data(text, file)
    if document is None:
        document = {}
    if not isinstance(document, dict) or not all(isinstance(k, str) for k in document):
        raise UserError(
            Fault(file, "", "an overlay maps JSON pointers into the schema to x-meta objects")
        )
    return Overlay(file, document)

"""The hooks plugins implement, and the small types they exchange.

Hooks are named `meta_<verb>_<noun>` and documented in docs/plugins.md under their exact
signatures (a test keeps the two in step). Plugins mark implementations with `meta.hookimpl`
and are found through the entry-point group `meta.plugins`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pluggy

PROJECT = "meta"
ENTRY_POINT_GROUP = "meta.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class Description:
    """A data description handed to generators: its file, and its document when it is JSON or
    YAML (None when the file is in another format; a generator may read `path` itself)."""

    path: Path
    document: Any = None
    data: Path | None = None
    """The data file the generated flow should read, when one was given."""
    flow_dir: Path = Path(".")
    """The directory the generated flow will be written to: relative paths start there."""
    schema_root: Path | None = None
    """The folder under which the files the description refers to may be read (a JSON
    Schema's `$ref`s to other files); None: the description's own folder."""

    def relative(self, path: Path) -> str:
        """`path` as the generated flow should name it (relative to the flow's directory)."""
        return os.path.relpath(path.resolve(), self.flow_dir.resolve())


@runtime_checkable
class Generator(Protocol):
    """Turns data descriptions into MetaFlow documents."""

    name: str

    def score(self, description: Description) -> float:
        """How well this generator understands `description`: 0 not at all, higher is better."""
        ...

    def generate(self, description: Description) -> dict[str, Any]:
        """The MetaFlow document (as plain data) for `description`; raise `meta.errors.UserError`
        naming the file and JSON pointer of anything wrong in the description."""
        ...


class GeneratorRegistry(Protocol):
    def register(self, generator: Generator) -> None:
        """Add a generator; its `name` must be unique among all registered generators."""
        ...


@hookspec
def meta_register_generators(registry: GeneratorRegistry) -> None:
    """Register this plugin's generators into `registry` (call `registry.register(generator)`).

    :param registry: the catalogue of generators that `meta generate`, `meta watch` and
        `generate` units choose from.
    """


@hookspec
def meta_transform_flow(
    flow: dict[str, Any], description: Description, generator: str
) -> dict[str, Any] | None:
    """Change a freshly generated flow before it is validated and written (house policy:
    retries, timeouts, labels...).

    Transforms run one after the other, each on the result of the one before: first those
    marked ``tryfirst=True``, then the others in the order their plugins were registered
    (built-in generators, then entry points sorted by distribution name, then plugins
    registered in code), then those marked ``trylast=True``. Return a new document, or None
    to keep the (possibly edited in place) `flow`.

    :param flow: the MetaFlow document produced so far.
    :param description: the description it was generated from.
    :param generator: the name of the generator that produced it.
    """

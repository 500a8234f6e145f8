"""The parts of a flow as frozen dataclasses, each emitting its own keys of the flow language.

Every part remembers where it was made (`made`). A part lists its YAML keys in `entries`, in the
order they are written, camelCase as the schema has them; a key whose value is None is left out.
Adding a field of the flow language is one attribute and one line in `entries`. Values are
passed through as given: the schema, not this module, says what is wrong with them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal, TypeAlias

from meta.builder.where import Made, caller

Scope: TypeAlias = Literal["macro", "micro"]
Pattern: TypeAlias = Literal["sequence", "dag", "fanout", "fanin", "dfs", "bfs", "cycle"]
Order: TypeAlias = Literal["pre", "post"]
Misfits: TypeAlias = Literal["fault", "keep"]
OnFailure: TypeAlias = Literal["stop", "continue"]
Cache: TypeAlias = bool | str | Mapping[str, str]
"""`True` (cache: true), a version string ("2": cache: {version: "2"}), or the mapping itself."""
Entries: TypeAlias = list[tuple[str, Any]]


def present(*pairs: tuple[str, Any]) -> Entries:
    """The pairs whose value is given (not None)."""
    return [(key, value) for key, value in pairs if value is not None]


def listed(values: Sequence[Any]) -> list[Any] | None:
    """A sequence as a list, None when empty (an empty field is not written)."""
    return list(values) or None


def cache_value(cache: Cache | None) -> Any:
    return {"version": cache} if isinstance(cache, str) else cache


@dataclass(frozen=True, kw_only=True)
class Part(ABC):
    """Anything written in a flow; `made` is the Python line that made it."""

    made: Made = field(default_factory=caller, compare=False, repr=False)

    @abstractmethod
    def entries(self) -> Entries:
        """The part's keys and values, in the order they are written."""


@dataclass(frozen=True, kw_only=True)
class Unit(Part):
    """What every unit has: a name, the siblings it waits for (in a dag), a `when`."""

    name: str
    depends_on: tuple[str, ...] = ()
    when: str | None = None

    def head(self) -> Entries:
        return present(
            ("name", self.name), ("dependsOn", listed(self.depends_on)), ("when", self.when)
        )


@dataclass(frozen=True, kw_only=True)
class FromEnv(Part):
    """An environment value taken from the environment meta runs in."""

    variable: str

    def entries(self) -> Entries:
        return [("fromEnv", self.variable)]


@dataclass(frozen=True, kw_only=True)
class SecretRef(Part):
    """An environment value taken from a key of a Kubernetes secret."""

    secret: str
    key: str

    def entries(self) -> Entries:
        return [("secretRef", {"name": self.secret, "key": self.key})]


EnvValue: TypeAlias = str | FromEnv | SecretRef


@dataclass(frozen=True, kw_only=True)
class Step(Unit):
    """One program: a process locally, a container in a pod."""

    command: Sequence[str]
    image: str | None = None
    env: Mapping[str, EnvValue] | None = None
    resources: Mapping[str, Mapping[str, str]] | None = None
    retries: int | None = None
    timeout_seconds: float | None = None
    cache: Cache | None = None

    def entries(self) -> Entries:
        run = present(
            ("command", self.command),
            ("image", self.image),
            ("env", self.env),
            ("resources", self.resources),
        )
        return [
            *self.head(),
            ("run", dict(run)),
            *present(
                ("retries", self.retries),
                ("timeoutSeconds", self.timeout_seconds),
                ("cache", cache_value(self.cache)),
            ),
        ]


@dataclass(frozen=True, kw_only=True)
class Over(Part):
    """What a data-driven section walks: an input (or, inside a visit, the visit's node), a
    place in it, and how to read it."""

    input: str | None
    path: str | None = None
    children: Sequence[str] | str | None = None
    named_entries: Sequence[str] | str | None = None
    depends_on: str | None = None
    chunk: int | None = None
    misfits: Misfits | None = None

    def entries(self) -> Entries:
        return present(
            ("input", self.input),
            ("path", self.path),
            ("children", self.children),
            ("entries", self.named_entries),
            ("misfits", self.misfits),
            ("dependsOn", self.depends_on),
            ("chunk", self.chunk),
        )


@dataclass(frozen=True, kw_only=True)
class Case(Part):
    """One case of a visit: the unit run for the nodes its `when` holds for."""

    when: str
    unit: Unit

    def entries(self) -> Entries:
        return [("when", self.when), ("unit", self.unit)]


Visit: TypeAlias = Unit | Sequence[Case]


@dataclass(frozen=True, kw_only=True)
class Section(Unit):
    """Units run by one pattern; made by `sequence`, `dag`, `fanout`... (meta.builder.units)."""

    scope: Scope
    pattern: Pattern
    order: Order | None = None
    max_active: int | None = None
    over: Over | None = None
    rounds: int | None = None
    units: tuple[Unit, ...] = ()
    visit: Visit | None = None
    gather: Unit | None = None
    ring: tuple[Unit, ...] = ()
    on_failure: OnFailure | None = None
    finally_: tuple[Unit, ...] = ()
    cache: Cache | None = None

    def entries(self) -> Entries:
        visit: Any = self.visit
        if visit is not None and not isinstance(visit, Unit):
            visit = {"cases": list(visit)}
        return [
            *self.head(),
            *present(
                ("scope", self.scope),
                ("pattern", self.pattern),
                ("order", self.order),
                ("maxActive", self.max_active),
                ("over", self.over),
                ("rounds", self.rounds),
                ("units", listed(self.units)),
                ("visit", visit),
                ("gather", self.gather),
                ("ring", listed(self.ring)),
                ("onFailure", self.on_failure),
                ("finally", listed(self.finally_)),
                ("cache", cache_value(self.cache)),
            ),
        ]


@dataclass(frozen=True, kw_only=True)
class FileInput(Part):
    """An input read from a file (relative to the flow's file)."""

    path: str | PurePath
    description: str | None = None
    schema: Mapping[str, Any] | None = None

    def entries(self) -> Entries:
        path = self.path.as_posix() if isinstance(self.path, PurePath) else self.path
        return present(("path", path), ("description", self.description), ("schema", self.schema))


@dataclass(frozen=True, kw_only=True)
class ValueInput(Part):
    """An input given inline: any JSON value (None is JSON's null)."""

    value: Any
    description: str | None = None
    schema: Mapping[str, Any] | None = None

    def entries(self) -> Entries:
        return [
            ("value", self.value),
            *present(("description", self.description), ("schema", self.schema)),
        ]


Input: TypeAlias = FileInput | ValueInput


@dataclass(frozen=True, kw_only=True)
class FlowRef(Unit):
    """Another flow file used as a unit."""

    path: str | PurePath
    inputs: Mapping[str, Input] | None = None

    def entries(self) -> Entries:
        path = self.path.as_posix() if isinstance(self.path, PurePath) else self.path
        return [*self.head(), ("flowRef", dict(present(("path", path), ("inputs", self.inputs))))]


@dataclass(frozen=True, kw_only=True)
class Source(Part):
    """A file a generate unit reads: one a unit upstream wrote, or one of the flow's inputs."""

    from_unit: str | None = None
    file: str | None = None
    input: str | None = None

    def entries(self) -> Entries:
        return present(("fromUnit", self.from_unit), ("file", self.file), ("input", self.input))


@dataclass(frozen=True, kw_only=True)
class Generate(Unit):
    """Run the generators at run time on a description, and the flow they return."""

    description: Source
    data: Source | None = None
    generator: str | None = None

    def entries(self) -> Entries:
        generate = present(
            ("description", self.description), ("data", self.data), ("generator", self.generator)
        )
        return [*self.head(), ("generate", dict(generate))]


@dataclass(frozen=True, kw_only=True)
class Defaults(Part):
    """What every step gets unless it says otherwise."""

    retries: int | None = None
    timeout_seconds: float | None = None
    retry_backoff_seconds: float | None = None
    cache: Cache | None = None

    def entries(self) -> Entries:
        return present(
            ("retries", self.retries),
            ("timeoutSeconds", self.timeout_seconds),
            ("retryBackoffSeconds", self.retry_backoff_seconds),
            ("cache", cache_value(self.cache)),
        )


@dataclass(frozen=True, kw_only=True)
class Limits(Part):
    """Bounds on flows generated at run time."""

    max_depth: int | None = None
    max_units: int | None = None

    def entries(self) -> Entries:
        return present(("maxDepth", self.max_depth), ("maxUnits", self.max_units))

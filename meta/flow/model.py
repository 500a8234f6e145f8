"""The flow language as typed, frozen data.

The JSON Schema in `schema.json` is the single source of validation; these classes are built
only from documents that passed it (see `meta.flow.parse`), so they hold no checks of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeAlias

from meta.flow.templates import is_template

API_VERSION = "meta-orchestrator.io/v1alpha1"
KIND = "MetaFlow"

Scope: TypeAlias = Literal["macro", "micro"]
Pattern: TypeAlias = Literal["sequence", "dag", "fanout", "fanin", "dfs", "bfs", "cycle"]
Order: TypeAlias = Literal["pre", "post"]
OnFailure: TypeAlias = Literal["stop", "continue"]


@dataclass(frozen=True)
class Origin:
    """Where a piece of a flow was written: the file and the JSON pointer inside it."""

    file: str
    pointer: str

    def at(self, *parts: str | int) -> Origin:
        suffix = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
        return Origin(self.file, self.pointer + suffix)


@dataclass(frozen=True)
class FileInput:
    """An input read from a file; `path` is absolute once the flow is loaded."""

    path: Path


@dataclass(frozen=True)
class ValueInput:
    """An input given inline in the flow."""

    value: Any


Input: TypeAlias = FileInput | ValueInput


@dataclass(frozen=True)
class InputDeclaration:
    """How a flow declares an input: its default (None: it must be given), what it is for,
    and the JSON Schema its value holds to (None: any value)."""

    default: Input | None = None
    description: str | None = None
    schema: Any = None


@dataclass(frozen=True)
class FromEnv:
    """A variable whose value is that of `name` in `meta`'s own environment (local runs only)."""

    name: str


@dataclass(frozen=True)
class SecretRef:
    """A variable whose value is `key` of the Kubernetes Secret `name` (locally: `--secret`).
    Its value is never in anything `meta` writes."""

    name: str
    key: str


EnvValue: TypeAlias = str | FromEnv | SecretRef
"""A step's declared variable: a string (templated), or where its value comes from. A step's
whole declared environment is `Run.env`; a cache key digests its strings as they are and the
values of `FromEnv` and `SecretRef` only by digest."""


@dataclass(frozen=True)
class Run:
    command: tuple[str, ...]
    image: str | None = None
    env: Mapping[str, EnvValue] = field(default_factory=dict)
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """`requests` and `limits`, each resource name -> Kubernetes quantity."""

    @cached_property
    def templated(self) -> bool:
        """Whether a string the engine renders for each attempt is a template."""
        texts = (*self.command, *self.literal_env.values(), self.image or "")
        return any(is_template(text) for text in texts)

    @property
    def literal_env(self) -> dict[str, str]:
        """The variables given as strings (templated), without those taken from elsewhere."""
        return {key: value for key, value in self.env.items() if isinstance(value, str)}


@dataclass(frozen=True)
class Cache:
    """`cache:` of a step, a section or the defaults: whether the unit's outputs are reused
    across runs, and the version text that is part of every key (changing it misses)."""

    enabled: bool = True
    version: str = ""


@dataclass(frozen=True)
class Step:
    name: str
    run: Run
    origin: Origin
    retries: int | None = None
    timeout_seconds: float | None = None
    depends_on: tuple[str, ...] = ()
    cache: Cache | None = None
    """None: as the flow's defaults say."""
    when: str | None = None


@dataclass(frozen=True)
class Over:
    """What a data-driven section walks: an input (or, for a fanout, the result of an upstream
    unit; with neither, the enclosing visit's node), a place inside it, and how to read it."""

    input: str | None
    path: str = ""
    children: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()
    """Fields of a tree node holding an object of child nodes keyed by name (a workflow's jobs)."""
    chunk: int = 0
    depends_on: str | None = None
    """A fanout over named entries: the field of an entry naming the entries it waits for."""
    result: str | None = None
    """The name of the upstream unit whose result a fanout walks, instead of an input."""
    keep_misfits: bool = False
    """`misfits: keep`. A tree walk: a field holding no nodes stays in its node as data
    (`meta.steps.walked`), and a root that is not an object is a node without children. A
    fanout: a place the data lacks, or a value that is no collection, is one without items."""

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field a tree walk takes children from: `children`, then `entries`."""
        return self.children + self.entries


@dataclass(frozen=True)
class Case:
    when: str
    unit: Unit
    origin: Origin


@dataclass(frozen=True)
class Cases:
    """A visit that picks its unit per node: the first case whose `when` holds."""

    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Section:
    name: str
    scope: Scope
    pattern: Pattern
    origin: Origin
    max_active: int | None = None
    units: tuple[Unit, ...] = ()
    over: Over | None = None
    visit: Unit | Cases | None = None
    gather: Unit | None = None
    order: Order = "pre"
    ring: tuple[Unit, ...] = ()
    rounds: int = 1
    depends_on: tuple[str, ...] = ()
    on_failure: OnFailure = "stop"
    final: tuple[Unit, ...] = ()
    """The `finally` units: run in order once the section's units have ended, whatever happened."""
    cache: Cache | None = None
    """None: not cached as a whole (the defaults' cache is for steps)."""
    when: str | None = None


@dataclass(frozen=True)
class FlowRef:
    name: str
    path: Path
    origin: Origin
    inputs: Mapping[str, Input] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    when: str | None = None


@dataclass(frozen=True)
class UnitSource:
    """A file a unit reads: one produced upstream (`from_unit`, `file`) or an input by name."""

    from_unit: str | None = None
    file: str | None = None
    input: str | None = None


@dataclass(frozen=True)
class Generate:
    """Run the generators at run time on a description, and the flow they return as a unit."""

    name: str
    description: UnitSource
    origin: Origin
    data: UnitSource | None = None
    generator: str | None = None
    depends_on: tuple[str, ...] = ()
    when: str | None = None

    def sources(self) -> Iterator[tuple[str, UnitSource]]:
        """(role, source) for the description and, when given, the data."""
        yield "description", self.description
        if self.data is not None:
            yield "data", self.data


Unit: TypeAlias = Step | Section | FlowRef | Generate
"""Every unit kind has `when`: a condition that, when false, skips the unit."""

DEFAULT_MAX_ACTIVE: dict[str, int] = {
    "sequence": 1,
    "dfs": 1,
    "bfs": 1,
    "dag": 4,
    "fanout": 4,
    "fanin": 4,
}


def max_active(section: Section) -> int:
    """The most units of `section` live at once: its maxActive, or the pattern's default
    (a cycle's default is its ring size: one live unit per ring member)."""
    return section.max_active or DEFAULT_MAX_ACTIVE.get(section.pattern, len(section.ring))


@dataclass(frozen=True)
class Defaults:
    retries: int = 0
    timeout_seconds: float = 3600.0
    retry_backoff_seconds: float = 1.0
    cache: Cache = Cache(enabled=False)


@dataclass(frozen=True)
class Limits:
    """Bounds on flows generated at run time; the root flow's limits hold for the whole run."""

    max_depth: int = 8
    max_units: int = 100_000


@dataclass(frozen=True)
class Flow:
    name: str
    source: Path
    root: Unit
    inputs: Mapping[str, Input] = field(default_factory=dict)
    """The inputs declared with a default, bound to it."""
    final: tuple[Unit, ...] = ()
    """`spec.finally`: units run in order once the root has ended, whatever happened."""
    defaults: Defaults = Defaults()
    limits: Limits = Limits()
    embedded: Mapping[Path, Any] = field(default_factory=dict)
    """Flow documents carried in `spec.flows`, by the absolute path a flowRef resolves to."""
    declarations: Mapping[str, InputDeclaration] = field(default_factory=dict)
    """Every input the flow declares, with a default or without."""
    parallelism: int | None = None
    """`spec.parallelism`: at most this many units (steps, whole pods, whole child flows) run
    at once in the run; None: only each section's maxActive bounds them."""
    pod_gc: str = ""
    """`spec.podGC.strategy` in the flow language's names (OnPodCompletion, OnPodSuccess,
    OnFlowCompletion, OnFlowSuccess), or "" to keep every pod. Only pods have it: the local
    runtime ignores it."""
    made_of: str = ""
    """A digest of the document the flow was made from, when its file's text does not say it
    (a flow a Python file makes from whatever it reads); "" for a flow read from its file. What
    `meta resume` compares to tell that the flow changed."""

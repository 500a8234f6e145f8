"""The small protocol every runtime implements: start a step, wait for it, stop it.

The engine decides what runs, when, with which inputs; a driver decides where: a local process,
a container in a pod. Outputs are named by unit id; the driver alone knows where they live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meta.flow.model import EnvValue, Scope

Feeder = tuple[str, str, str, Any, bool, bool]
"""A unit that feeds another, as a task carries it: (name, unit id, state, result, shown,
renewed)."""


@dataclass(frozen=True, slots=True)
class StepTask:
    """One attempt at one step, fully rendered."""

    id: str
    name: str
    section: str
    scope: Scope
    command: tuple[str, ...]
    env: Mapping[str, EnvValue]
    """The step's declared variables, strings rendered; those taken from elsewhere (`FromEnv`,
    `SecretRef`) the driver resolves, and only where the step runs."""
    image: str | None
    input: Any
    upstream: Sequence[tuple[str, str]]
    """(subdirectory name, producing unit id) for every unit whose outputs flow into this one."""
    pod: str | None
    """The micro section (pod) whose scratch this step shares, or None for a macro step."""
    workdir: str
    """Where the step's program starts (locally: the flow file's directory)."""
    attempt: int
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """What its container asks of its node (`requests`, `limits`); locally unused."""


@dataclass(frozen=True, slots=True)
class PodTask:
    """One attempt at a micro section that runs as one pod, whose units a quarterback drives
    inside it. It names the section by where it is written, so the quarterback, given the same
    flow, finds the same section and gives its units the same ids."""

    id: str
    name: str
    section: str
    """The id of the section it runs in."""
    file: str
    pointer: str
    """Where the section is written: its flow's file (as faults name it) and JSON pointer."""
    input: Any
    iteration: Mapping[str, Any] | None
    """The template variables of the iteration it runs in (node, item, path...), or None."""
    hidden: tuple[str, ...]
    upstream: Sequence[tuple[str, str]]
    attempt: int
    max_active: int
    fed_by: Sequence[Feeder] = ()
    """Every unit that feeds the section, skipped ones too, with its state and result."""


@dataclass(frozen=True, slots=True)
class FlowTask:
    """One attempt at a flowRef run as a flow of its own (a child resource), rather than in
    place: its plan, where it is called from, and what flows into it."""

    id: str
    name: str
    section: str
    plan: Any
    """The referenced flow's `Plan`, its inputs bound by the flowRef."""
    upstream: Sequence[tuple[str, str]]
    attempt: int
    fed_by: Sequence[Feeder] = ()
    """Every unit that feeds the flowRef, skipped ones too, with its state and result."""


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    stderr_tail: str = ""
    reason: str = ""
    """Why the attempt failed when the driver knows better than the exit code (it could not
    start the program, or keep what it wrote)."""
    result: Any = None
    """What a step that succeeded wrote to META_RESULT, parsed (`meta.engine.results`)."""


class Running(Protocol):
    async def wait(self) -> Exit:
        """Wait for the step to end; on exit code 0 its outputs are persisted before returning."""
        ...

    async def stop(self) -> None:
        """Stop the step and everything it started."""
        ...

    async def last_words(self) -> str:
        """The end of what the step wrote so far, read just before it is stopped for its time
        limit; "" from a driver that gives it with the stop instead (`wait` after `stop`)."""
        ...


class Refused:
    """An attempt that never got started (its driver could not place it): it ends at once."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def wait(self) -> Exit:
        return Exit(-1, "", self._reason)

    async def stop(self) -> None:
        pass

    async def last_words(self) -> str:
        return ""


class Driver(Protocol):
    async def start(self, task: StepTask) -> Running: ...

    async def open_pod(self, pod: str) -> None:
        """A micro section begins: give its units one shared scratch."""
        ...

    async def close_pod(self, pod: str) -> None: ...

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        """Make `unit_id`'s outputs one subdirectory per (name, unit id) part, without copies."""
        ...

    def outputs(self, unit_id: str) -> str:
        """Where a finished unit's outputs are kept (for the report)."""
        ...


class PodDriver(Driver, Protocol):
    """A driver that runs each outermost micro section as one unit of its own (a pod), rather
    than having the engine drive the section's units through `open_pod`. Given to the engine
    as `pods` when it is built."""

    async def start_pod(self, task: PodTask) -> Running: ...


class FlowDriver(Driver, Protocol):
    """A driver that runs each flowRef as a flow of its own (a child MetaFlow), which records
    its own progress, rather than having the engine run the referenced flow in place. Given to
    the engine as `flows` when it is built."""

    async def start_flow(self, task: FlowTask) -> Running: ...

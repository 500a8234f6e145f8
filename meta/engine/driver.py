"""The small protocol every runtime implements: start a step, wait for it, stop it.

The engine decides what runs, when, with which inputs; a driver decides where: a local process,
a container in a pod. Outputs are named by unit id; the driver alone knows where they live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meta.flow.model import Scope


@dataclass(frozen=True, slots=True)
class StepTask:
    """One attempt at one step, fully rendered."""

    id: str
    name: str
    section: str
    scope: Scope
    command: tuple[str, ...]
    env: Mapping[str, str]
    image: str | None
    input: Any
    upstream: Sequence[tuple[str, str]]
    """(subdirectory name, producing unit id) for every unit whose outputs flow into this one."""
    pod: str | None
    """The micro section (pod) whose scratch this step shares, or None for a macro step."""
    workdir: str
    """Where the step's program starts (locally: the flow file's directory)."""
    attempt: int


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    stderr_tail: str = ""
    reason: str = ""
    """Why the attempt failed when the driver knows better than the exit code (it could not
    start the program, or keep what it wrote)."""


class Running(Protocol):
    async def wait(self) -> Exit:
        """Wait for the step to end; on exit code 0 its outputs are persisted before returning."""
        ...

    async def stop(self) -> None:
        """Stop the step and everything it started."""
        ...


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

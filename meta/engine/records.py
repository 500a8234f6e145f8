"""What the engine tells the world as it runs: unit and section records, listeners, the journal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from meta.flow.model import Pattern, Scope

UnitState = Literal["running", "succeeded", "failed", "cancelled", "skipped", "cached"]
CONDITION = "condition"
"""Why a unit its `when` skipped was."""
UPSTREAM_FAILED = "upstream-failed"
"""Why a unit was skipped when a unit it reads failed (`onFailure: continue`)."""


ATTEMPT_ENDS = frozenset({"succeeded", "failed", "cancelled"})
"""The states an attempt that ran ends in (skipped and cached units made none)."""


def finished_for_good(state: str, reason: str) -> bool:
    """Whether a unit that ended so is not run again by a resumed run: it succeeded (its
    outputs are in the store), or its condition skipped it; one skipped because a unit it
    reads failed is not (that unit runs again)."""
    return state in ("succeeded", "cached") or (state == "skipped" and reason == CONDITION)


def worth_a_look(state: str, reason: str, attempts: int, retrying: bool) -> bool:
    """Whether an attempt's record is kept where room is short (a compacted journal, what a
    micro pod hands the operator): its unit did not finish for good, or it was tried more than
    once (the attempt before a retry says `retrying`, a retry has a number past 1)."""
    return not finished_for_good(state, reason) or retrying or attempts > 1


@dataclass(frozen=True, slots=True)
class UnitRecord:
    id: str
    name: str
    section: str
    scope: Scope
    state: UnitState
    attempts: int
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    stderr_tail: str = ""
    resumed: bool = False
    """True when the unit had finished in an earlier run and was not run again."""
    retrying: bool = False
    """True for a failed attempt that is followed by another (the unit has not failed)."""
    cached_from: str = ""
    """For a `cached` unit: the run whose outputs it reused (nothing of it ran)."""
    result: Any = None
    """What a unit that succeeded wrote to META_RESULT (a micro pod, a child flow: its
    section's or flow's result); None for none."""


def attempt_entry(record: UnitRecord) -> dict[str, Any]:
    """One ended attempt as the report (locally) and `meta status` (both runtimes) list it."""
    return {
        "attempt": record.attempts,
        "state": record.state,
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
        "exitCode": record.exit_code,
        "reason": record.reason,
        "stderrTail": record.stderr_tail,
    }


def add_attempt(history: list[dict[str, Any]], record: UnitRecord) -> None:
    """Add an ended attempt to a unit's history; a second record of the same attempt (one
    cancelled while waiting to retry) is its last word and stands in for the first."""
    entry = attempt_entry(record)
    last = history[-1] if history else None
    if last is not None and (last["attempt"], last["startedAt"]) == (
        entry["attempt"],
        entry["startedAt"],
    ):
        history[-1] = entry
    else:
        history.append(entry)


@dataclass(frozen=True, slots=True)
class SectionRecord:
    id: str
    name: str
    pattern: Pattern
    scope: Scope
    max_active: int
    peak_active: int
    units_run: int
    state: str = "succeeded"
    """Or "failed": a unit's failure ended it (the counts are then of what ran until then)."""


class Listener(Protocol):
    def unit_started(self, record: UnitRecord) -> None: ...

    def unit_finished(self, record: UnitRecord) -> None: ...

    def section_finished(self, record: SectionRecord) -> None: ...


class NullListener:
    def unit_started(self, record: UnitRecord) -> None:
        pass

    def unit_finished(self, record: UnitRecord) -> None:
        pass

    def section_finished(self, record: SectionRecord) -> None:
        pass


class Journal(Protocol):
    """Durable progress: what finished, so that a resumed run does not run it again."""

    def finished(self) -> Mapping[str, UnitRecord]: ...

    def attempts_made(self, uid: str) -> int:
        """The highest attempt number of `uid` on record from earlier sessions (0: none). A
        resumed unit numbers its attempts on from there, so that none takes the number, and
        the kept logs, of an attempt made before."""
        ...

    def record_started(self, record: UnitRecord) -> None: ...

    def record_finished(self, record: UnitRecord) -> None: ...


class NullJournal:
    def finished(self) -> Mapping[str, UnitRecord]:
        return {}

    def attempts_made(self, uid: str) -> int:
        return 0

    def record_started(self, record: UnitRecord) -> None:
        pass

    def record_finished(self, record: UnitRecord) -> None:
        pass

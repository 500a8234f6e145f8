"""One local run as the page sees it, kept up to date by tailing its journal.

`RunModel.update()` reads what the journal gained since the last call (whole lines only: a
line still being written is left for the next call), applies it, and says which units changed.
Counts are kept per group of the flow's structure (a section, a flowRef, a generate unit) and
summed into every group around it, so a collapsed section shows its totals without the page
holding its units; each group keeps its units in the order the walk reached them, so the page
asks for a window of them at a time. Once the run has ended its report adds what the journal
does not hold: cancelled steps, steps resumed from an earlier session, each section's peak.

A unit's state is the journal's, with the rules `meta status` applies: a step that succeeded in
an earlier session is `cached`; a step still running when its session ended, or when the run
ended without a report, is `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta.errors import Fault, MetaError, UserError
from meta.flow.files import display_path
from meta.local.driver import OUTPUTS, on_disk, scratch_root, unit_tag
from meta.local.journal import JOURNAL
from meta.local.runner import REPORT_FILE, RUN_FILE, fingerprint, recorded_inputs
from meta.local.runs import STARTING_SECONDS, Counts, Run, Unit, session_alive, unit_logs
from meta.plan.plan import compile_plan
from meta.ui.structure import Structure, structure

STATES = ("running", "succeeded", "failed", "cancelled", "cached", "skipped")
READ_LIMIT = 2 << 20
"""Journal bytes read at most per update, so one update of a huge journal cannot hold the
server's loop for long; the next update reads on."""
ALIVE_CHECK_SECONDS = 0.5
"""How often, at most, whether the session lives is asked of /proc."""
LOG_TAIL_BYTES = 4000
CHANGED = "changed since this run started: what it holds now is not what the run ran"
OUTPUTS_LISTED = 200


@dataclass(slots=True)
class UnitState:
    id: str
    name: str
    group: str
    node: str | None
    instance: str
    levels: tuple[tuple[str, str], ...]
    """(group, its instance's id) of every group it is in, outermost first."""
    index: int
    """Its position among its group's units, in the order they were reached."""
    session: int
    state: str = "running"
    attempt: int = 1
    started_at: float = 0.0
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    stderr_tail: str = ""
    result: Any = None
    """What it wrote to META_RESULT (a section: its result units'), once it has ended."""
    scope: str = ""
    retried: bool = False
    """Counted as retried (past attempt 1)."""
    attempts: list[tuple[int, float]] = field(default_factory=list)
    """(attempt, when it started) of its last session."""
    counted: list[dict[str, int]] = field(default_factory=list)
    """The counts it is part of: its group's, those of the groups around it, its node's
    (shared by the units of one group and node)."""

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "group": self.group,
            "i": self.index,
            "state": self.state,
            "attempt": self.attempt,
            "exitCode": self.exit_code,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


@dataclass
class GroupState:
    counts: dict[str, int] = field(default_factory=lambda: _zero())
    """Units in it and in every group inside it, by state; `retried`: those past attempt 1."""
    members: list[str] = field(default_factory=list)
    """Its own units (not those of groups inside it), in the order reached."""
    peak: int = 0
    """The most units of one of its section instances seen live at once (a step running, or
    a nested section instance with a step running inside)."""
    reported_peak: int | None = None
    """The report's peakActive (the engine's own count), once the run has ended."""


class UnitsModel:
    """A run's units as the page sees them, fed journal entries (`_apply`): the counts of every
    group, the peaks, the rows. Where the entries come from is a subclass's business: a local
    workdir's journal (`RunModel`), or a MetaFlow's journal and pods in a cluster."""

    follow_seconds = 0.1
    """How often the run is read again while a page watches it (a local journal: for new
    lines)."""

    def __init__(self, flow: str, made: Callable[[], Structure]) -> None:
        self.flow = flow
        self.structure_fault: str | None = None
        try:
            self.structure = made()
        except (MetaError, OSError, KeyError, TypeError) as exc:
            # The flow file moved or changed: the units are still shown, by their ids.
            self.structure = Structure()
            self.structure_fault = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.groups: dict[str, GroupState] = {g: GroupState() for g in self.structure.groups}
        self.nodes: dict[str, dict[str, int]] = {}
        self.units: dict[str, UnitState] = {}
        self.sessions: list[tuple[int, float]] = []
        self.live: dict[str, dict[str, int]] = {}
        """Per section instance, its units live now (a step running, or a nested section
        instance with one running inside) and how many running steps each holds: the peaks."""
        self.state = "running"
        self._counted: dict[tuple[str, str | None], list[dict[str, int]]] = {}

    async def load(self) -> set[str]:
        """Read everything there is now; the ids of the units it gave."""
        raise NotImplementedError

    async def refresh(self) -> set[str]:
        """Read what changed since the last read; the ids of the units that changed."""
        raise NotImplementedError

    async def detail_of(self, uid: str) -> dict[str, Any]:
        """Everything the page shows of one unit; KeyError when the run has no such unit."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError

    def _apply(self, entry: Mapping[str, Any], changed: set[str]) -> None:
        event = entry["event"]
        if event == "session":
            self.sessions.append((int(entry["pid"]), float(entry["at"])))
            self._checked = 0.0
            self.state = "running"
            for unit in self.units.values():
                if unit.state in ("succeeded", "running"):
                    self._set(unit, "cached" if unit.state == "succeeded" else "cancelled")
                    changed.add(unit.id)
            return
        uid = str(entry["id"])
        unit = self.units.get(uid) or self._reach(uid, str(entry.get("name", "")))
        session = len(self.sessions) - 1
        if event == "started":
            attempt, at = int(entry["attempt"]), float(entry["at"])
            if unit.session != session:
                unit.attempts = []
            unit.session, unit.attempt, unit.started_at = session, attempt, at
            unit.finished_at, unit.exit_code, unit.reason = None, None, ""
            unit.attempts.append((attempt, at))
            self._set(unit, "running")
        elif event == "finished":
            unit.name = str(entry["name"])
            unit.scope = str(entry.get("scope", ""))
            unit.attempt = int(entry["attempts"])
            unit.started_at = float(entry["started_at"])
            unit.finished_at = float(entry["finished_at"])
            unit.exit_code = entry.get("exit_code")
            unit.reason = str(entry.get("reason") or "")
            unit.stderr_tail = str(entry.get("stderr_tail") or "")
            unit.result = entry.get("result")
            unit.session = session
            # A failed attempt followed by another (a retry) leaves the unit running.
            self._set(unit, "running" if entry.get("retrying") else str(entry["state"]))
        changed.add(uid)

    def _reach(self, uid: str, name: str) -> UnitState:
        place = self.structure.place(uid)
        group = self.groups.get(place.group)
        if group is None:
            group = self.groups[place.group] = GroupState()
        unit = UnitState(
            uid,
            name or uid.rsplit("/", 1)[-1],
            place.group,
            place.node,
            place.instance,
            place.levels,
            len(group.members),
            len(self.sessions) - 1,
            state="",
        )
        # Units of one group and node count in the same places: one list for all of them.
        counted = self._counted.get((unit.group, unit.node))
        if counted is None:
            counted = [self.groups[g].counts for g in self._groups_of(unit)]
            if unit.node is not None:
                counted.append(self.nodes.setdefault(unit.node, _zero()))
            self._counted[(unit.group, unit.node)] = counted
        unit.counted = counted
        group.members.append(uid)
        self.units[uid] = unit
        return unit

    def _set(self, unit: UnitState, state: str) -> None:
        """Move `unit` to `state` (its attempt already set), keeping every count it is in."""
        old, retried = unit.state, unit.attempt > 1
        for counts in unit.counted:
            if old:
                counts[old] -= 1
            counts[state] += 1
            if retried != unit.retried:
                counts["retried"] += 1 if retried else -1
        unit.retried = retried
        unit.state = state
        if old == "running" and state != "running":
            self._live(unit, -1)
        elif state == "running" and old != "running":
            self._live(unit, +1)

    def _live(self, unit: UnitState, change: int) -> None:
        """A step starts (+1) or stops (-1) running: in each section instance around it, the
        unit it is in (itself, or a nested section's instance) is live while it holds one."""
        levels = unit.levels
        last = len(levels) - 1
        for level, (group, instance) in enumerate(levels):
            inside = levels[level + 1][1] if level < last else unit.id
            live = self.live.get(instance)
            if live is None:
                live = self.live[instance] = {}
            count = live.get(inside, 0) + change
            if count > 0:
                live[inside] = count
            else:
                live.pop(inside, None)
            if change > 0:
                state = self.groups.get(group)
                if state is not None and len(live) > state.peak:
                    state.peak = len(live)
            elif not live:
                del self.live[instance]

    def _groups_of(self, unit: UnitState) -> Iterator[str]:
        known = False
        for group in self.structure.ancestors(unit.group):
            known = True
            yield group
        if not known:
            yield unit.group

    def reported_peaks(self, sections: Iterable[Mapping[str, Any]]) -> None:
        """Each section's peakActive as the engine counted it, once the run has ended."""
        for section in sections:
            place = self.structure.place(f"{section.get('id')}/-")
            group = self.groups.get(place.group)
            if group is not None:
                peak = int(section.get("peakActive") or 0)
                group.reported_peak = max(group.reported_peak or 0, peak)

    def cancel_running(self, changed: set[str]) -> None:
        """The run has ended: a unit still running then was cancelled."""
        for unit in self.units.values():
            if unit.state == "running":
                self._set(unit, "cancelled")
                changed.add(unit.id)

    def counts(self) -> dict[str, Any]:
        """The units' counts by state: in all, per group, per node of the structure."""
        total = _zero()
        # The outermost groups hold every unit's counts (those outside the structure, too).
        for name, group in self.groups.items():
            if self.structure.groups.get(name) is None:
                for state, n in group.counts.items():
                    total[state] += n
        return {
            "units": total,
            "structureFault": self.structure_fault,
            "groups": {
                name: {
                    "counts": group.counts,
                    "size": len(group.members),
                    "peak": group.reported_peak if group.reported_peak is not None else group.peak,
                }
                for name, group in self.groups.items()
            },
            "nodes": self.nodes,
        }

    def describe(self, unit: UnitState) -> dict[str, Any]:
        """What any run says of one of its units, before what only its runtime can say."""
        return {
            **unit.row(),
            "scope": unit.scope,
            "section": unit.instance,
            "node": unit.node,
            "reason": unit.reason,
            "stderrTail": unit.stderr_tail,
            "result": unit.result,
        }

    def graph(self) -> dict[str, Any]:
        extra = [
            {"id": name, "parent": None, "kind": "group", "label": name}
            for name in self.groups
            if name not in self.structure.groups
        ]
        return {"nodes": [*self.structure.nodes, *extra], "edges": self.structure.edges}

    def rows(self, group: str, offset: int, limit: int) -> list[dict[str, Any]]:
        members = self.groups[group].members if group in self.groups else []
        return [self.units[uid].row() for uid in members[offset : offset + limit]]


class RunModel(UnitsModel):
    """A local run, read from its workdir: run.json, the journal as it grows, the report."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        try:
            self.info = json.loads((workdir / RUN_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(Fault(display_path(workdir), "", "no run here (no run.json)")) from None
        except (OSError, ValueError, RecursionError) as exc:
            raise UserError(Fault(display_path(workdir), "", f"unreadable: {exc}")) from None

        def made() -> Structure:
            flow = Path(self.info["flow"])
            plan = compile_plan(flow, recorded_inputs(self.info))
            # Only what `meta run` wrote records a fingerprint: other run.json files (a test's,
            # a benchmark's) are drawn as their flow reads now.
            recorded = self.info.get("fingerprint")
            if recorded is not None and fingerprint(plan) != recorded:
                raise UserError(Fault(display_path(flow), "", CHANGED))
            return structure(plan)

        super().__init__(str(self.info.get("name") or Path(str(self.info.get("flow"))).stem), made)
        self.report: dict[str, Any] | None = None
        self._offset = 0
        self._checked = 0.0

    async def load(self) -> set[str]:
        return await asyncio.to_thread(self.catch_up)

    async def refresh(self) -> set[str]:
        return await asyncio.to_thread(self.update)

    async def detail_of(self, uid: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.detail, uid)

    def catch_up(self) -> set[str]:
        """Read the whole journal as it is now (update reads at most READ_LIMIT at a time)."""
        changed: set[str] = set()
        while True:
            offset = self._offset
            changed |= self.update()
            if self._offset == offset:
                return changed

    # Reading

    def update(self) -> set[str]:
        """Read what the journal gained and, when the run has just ended, its report; the ids
        of the units that changed."""
        changed: set[str] = set()
        for line in self._new_lines():
            with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
                self._apply(_decode(line), changed)
        if self.state == "running" and self._ended():
            self._finish(changed)
        return changed

    def _new_lines(self) -> Iterator[str]:
        try:
            with (self.workdir / JOURNAL).open("rb") as journal:
                journal.seek(self._offset)
                data = journal.read(READ_LIMIT)
        except FileNotFoundError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        self._offset += len(whole)
        yield from whole.decode("utf-8", "replace").splitlines()

    def _ended(self) -> bool:
        now = time.monotonic()
        if now - self._checked < ALIVE_CHECK_SECONDS:
            return False
        self._checked = now
        if self.sessions:
            return not session_alive(*self.sessions[-1])
        started = float(self.info.get("startedAt", 0))
        return (self.workdir / REPORT_FILE).exists() or time.time() - started > STARTING_SECONDS

    def _finish(self, changed: set[str]) -> None:
        """The session has ended: its report says how, or there is none (it was killed)."""
        report = _read_json(self.workdir / REPORT_FILE)
        last = self.sessions[-1][1] if self.sessions else 0.0
        if report is not None and float(report.get("finishedAt", 0)) >= last:
            self.report = report
            self.state = str(report.get("state", "interrupted"))
            for entry in report.get("units", []):
                unit = self.units.get(str(entry.get("id")))
                if unit is None:
                    continue
                state = str(entry.get("state"))
                state = "cached" if entry.get("resumed") and state == "succeeded" else state
                if state != unit.state and state in STATES:
                    unit.exit_code = entry.get("exitCode", unit.exit_code)
                    unit.reason = str(entry.get("reason") or unit.reason)
                    self._set(unit, state)
                    changed.add(unit.id)
            self.reported_peaks(report.get("sections", []))
        else:
            self.state = "interrupted"
        self.cancel_running(changed)

    # Views

    def summary(self) -> dict[str, Any]:
        """The run and every group's counts: all the page needs before it expands anything."""
        error = (self.report or {}).get("error") or {}
        return {
            "run": display_path(self.workdir),
            "flow": self.flow,
            "state": self.state,
            "startedAt": self.info.get("startedAt"),
            "finishedAt": (self.report or {}).get("finishedAt"),
            "failedUnit": error.get("unit"),
            "reason": error.get("reason") or "; ".join(error.get("faults", [])) or None,
            "outputs": (self.report or {}).get("outputs"),
            **self.counts(),
        }

    def detail(self, uid: str) -> dict[str, Any]:
        """Everything the page shows of one unit; KeyError when the run has no such unit."""
        unit = self.units[uid]
        attempts = []
        for attempt, at in unit.attempts or [(unit.attempt, unit.started_at)]:
            logs = self._logs(unit, attempt)
            attempts.append({"attempt": attempt, "startedAt": at, **logs})
        return {
            **self.describe(unit),
            "attempts": attempts,
            "input": self._input(unit),
            "outputs": self._outputs(unit),
        }

    def _logs(self, unit: UnitState, attempt: int) -> dict[str, str | None]:
        # `meta logs`' own lookup: kept logs, or a running attempt's from its scratch. It
        # needs of the run only its workdir and whether it runs.
        run = Run(self.workdir, self.flow, self.state, 0.0, None, 0.0, Counts(), {})
        try:
            found = unit_logs(
                run, Unit(unit.id, unit.name, unit.state, unit.attempt, unit.started_at), attempt
            )
        except UserError:
            return {"stdout": None, "stderr": None}
        return {"stdout": _tail(found.stdout), "stderr": _tail(found.stderr)}

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.workdir.resolve())

    def _input(self, unit: UnitState) -> Any:
        """META_INPUT's value while the step runs: the input.json of its newest attempt's
        folder in the scratch (`<k>-<tag>`, in the scratch's units, or in those of the pod of
        the micro section around it, whose id starts its own); None when it does not run."""
        if unit.state != "running":
            return None
        scratch = scratch_root(self.workdir)
        ending = f"-{unit_tag(unit.id)}"
        parts = unit.id.split("/")
        folders = [scratch / "units"]
        folders += [
            scratch / "pods" / on_disk("/".join(parts[:n])) / "units" for n in range(1, len(parts))
        ]
        found: list[tuple[int, str]] = []
        for folder in folders:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    counter = entry.name.removesuffix(ending)
                    if counter != entry.name and counter.isdigit():
                        found.append((int(counter), entry.path))
        if not found:
            return None
        path = Path(max(found)[1], "input.json")
        return _read_json(path) if path.resolve().is_relative_to(scratch.resolve()) else None

    def _outputs(self, unit: UnitState) -> list[dict[str, Any]] | None:
        folder = self.workdir / "store" / unit.id / OUTPUTS
        if not self._inside(folder) or not folder.is_dir():
            return None
        listed = []
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                with contextlib.suppress(OSError):
                    listed.append(
                        {"path": str(path.relative_to(folder)), "bytes": path.stat().st_size}
                    )
                if len(listed) >= OUTPUTS_LISTED:
                    return listed
        return listed


_decode = json.JSONDecoder().decode


def _zero() -> dict[str, int]:
    return dict.fromkeys((*STATES, "retried"), 0)


def _tail(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None

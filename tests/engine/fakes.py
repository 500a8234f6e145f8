"""An in-memory `Driver` that records everything, and helpers that build plans from flow files.

The fake driver numbers every event (start, end, stop) with one global sequence number, so a
test can check order ("a parent starts after its children ended") without looking at clocks,
and counts the steps live in each section (`StepTask.section`) at every moment.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meta.engine.driver import Exit, StepTask
from meta.engine.engine import Engine
from meta.engine.frontiers import Done
from meta.engine.records import Journal, SectionRecord, UnitRecord
from meta.plan.plan import Plan, compile_plan

ALWAYS = 10**9
"""`fail={id: ALWAYS}`: the unit fails on every attempt."""

FAIL_CODE = 3


@dataclass
class Event:
    seq: int
    kind: str
    """'start', 'end' (wait returned) or 'stop' (stopped while running)."""
    id: str
    section: str
    at: float
    task: StepTask
    code: int | None = None


class FakeRunning:
    def __init__(self, driver: FakeDriver, task: StepTask) -> None:
        self._driver = driver
        self.task = task
        self.ended = False

    def _end(self, kind: str, code: int | None = None) -> None:
        if not self.ended:
            self.ended = True
            self._driver._record(kind, self.task, code)
            self._driver.live[self.task.section] -= 1

    async def wait(self) -> Exit:
        driver, uid = self._driver, self.task.id
        if uid in driver.hang:
            await asyncio.Event().wait()
        if uid in driver.sleep:
            await asyncio.sleep(driver.sleep[uid])
        else:
            for _ in range(driver.yields(self.task)):
                await asyncio.sleep(0)
        if self.task.attempt <= driver.fail.get(uid, 0):
            self._end("end", FAIL_CODE)
            return Exit(FAIL_CODE, f"boom from {uid} attempt {self.task.attempt}")
        self._end("end", 0)
        result = driver.results.get(uid)
        return Exit(0, result=result(self.task) if callable(result) else result)

    async def stop(self) -> None:
        self._driver.stopped.append(self.task.id)
        self._end("stop")

    async def last_words(self) -> str:
        return ""


class FakeDriver:
    """Runs nothing: each step waits (yields, sleeps or hangs) and then exits 0 or fails."""

    def __init__(
        self,
        *,
        fail: Mapping[str, int] | None = None,
        sleep: Mapping[str, float] | None = None,
        hang: Iterable[str] = (),
        yields: Callable[[StepTask], int] | None = None,
        results: Mapping[str, Any] | None = None,
    ) -> None:
        self.fail = dict(fail or {})
        """Unit id -> how many attempts fail (exit code FAIL_CODE) before one succeeds."""
        self.sleep = dict(sleep or {})
        """Unit id -> seconds its wait() sleeps."""
        self.hang = set(hang)
        """Unit ids whose wait() never returns (until cancelled)."""
        self.results = dict(results or {})
        """Unit id -> the result its successful attempt gives (a callable: of its task)."""
        self.yields = yields or (lambda task: 0)
        """How many times a step's wait() yields to the event loop before exiting."""
        self.events: list[Event] = []
        self.live: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.stopped: list[str] = []
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.open_pods: set[str] = set()
        self.combined: dict[str, list[tuple[str, str]]] = {}
        self.problems: list[str] = []
        """Protocol misuse seen: a step started in a closed pod, a pod opened twice..."""
        self._seq = itertools.count()

    def _record(self, kind: str, task: StepTask, code: int | None = None) -> None:
        self.events.append(
            Event(next(self._seq), kind, task.id, task.section, time.monotonic(), task, code)
        )

    async def start(self, task: StepTask) -> FakeRunning:
        if task.pod is not None and task.pod not in self.open_pods:
            self.problems.append(f"{task.id} started in pod {task.pod}, which is not open")
        self._record("start", task)
        self.live[task.section] += 1
        self.peak[task.section] = max(self.peak[task.section], self.live[task.section])
        return FakeRunning(self, task)

    async def open_pod(self, pod: str) -> None:
        if pod in self.opened:
            self.problems.append(f"pod {pod} opened twice")
        self.opened.append(pod)
        self.open_pods.add(pod)

    async def close_pod(self, pod: str) -> None:
        if pod not in self.open_pods:
            self.problems.append(f"pod {pod} closed but not open")
        self.closed.append(pod)
        self.open_pods.discard(pod)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        self.combined[unit_id] = list(parts)

    def outputs(self, unit_id: str) -> str:
        return f"/store/{unit_id}/@outputs"

    # Reading what happened.

    def starts(self) -> list[Event]:
        return [e for e in self.events if e.kind == "start"]

    def start_ids(self) -> list[str]:
        return [e.id for e in self.starts()]

    def tasks(self) -> dict[str, StepTask]:
        """The first attempt's task of every started unit."""
        found: dict[str, StepTask] = {}
        for event in self.starts():
            found.setdefault(event.id, event.task)
        return found

    def most_at_once(self) -> int:
        """The most steps running at once in the whole run, whatever their sections."""
        live = most = 0
        for event in self.events:
            live += 1 if event.kind == "start" else -1
            most = max(most, live)
        return most

    def start_of(self, uid: str) -> int:
        return next(e.seq for e in self.events if e.kind == "start" and e.id == uid)

    def end_of(self, uid: str) -> int:
        """When the unit's last attempt ended (or was stopped)."""
        return max(e.seq for e in self.events if e.kind != "start" and e.id == uid)

    def interval(self, uids: Iterable[str]) -> tuple[int, int]:
        """From the first start to the last end among `uids` (a section seen as one unit)."""
        uids = set(uids)
        return (
            min(e.seq for e in self.events if e.kind == "start" and e.id in uids),
            max(e.seq for e in self.events if e.kind != "start" and e.id in uids),
        )


def max_overlap(intervals: Iterable[tuple[int, int]]) -> int:
    """The most intervals (start seq, end seq) open at one moment."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    live = peak = 0
    for _, delta in points:
        live += delta
        peak = max(peak, live)
    return peak


class RecordingListener:
    def __init__(self) -> None:
        self.started: list[UnitRecord] = []
        self.finished: list[UnitRecord] = []
        self.sections: list[SectionRecord] = []

    def unit_started(self, record: UnitRecord) -> None:
        self.started.append(record)

    def unit_finished(self, record: UnitRecord) -> None:
        self.finished.append(record)

    def section_finished(self, record: SectionRecord) -> None:
        self.sections.append(record)

    def section(self, uid: str) -> SectionRecord:
        return next(s for s in self.sections if s.id == uid)


class FakeJournal:
    def __init__(self, finished: Mapping[str, UnitRecord] | None = None) -> None:
        self._finished = dict(finished or {})
        self.started: list[UnitRecord] = []
        self.ended: list[UnitRecord] = []

    def finished(self) -> Mapping[str, UnitRecord]:
        return self._finished

    def attempts_made(self, uid: str) -> int:
        return 0

    def record_started(self, record: UnitRecord) -> None:
        self.started.append(record)

    def record_finished(self, record: UnitRecord) -> None:
        self.ended.append(record)


def step(name: str, *command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"command": list(command or (name,))}, **extra}


def section(name: str, pattern: str, scope: str = "macro", **extra: Any) -> dict[str, Any]:
    return {"name": name, "scope": scope, "pattern": pattern, **extra}


def write_flow(
    directory: Path,
    root: Mapping[str, Any],
    *,
    name: str = "t",
    inputs: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    parallelism: int | None = None,
    filename: str = "flow.yaml",
    files: Mapping[str, Any] | None = None,
    final: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write a flow file (and its data files: `.jsonl` from a list, anything else as JSON)."""
    directory.mkdir(parents=True, exist_ok=True)
    for file, value in (files or {}).items():
        path = directory / file
        if file.endswith(".jsonl"):
            path.write_text("".join(json.dumps(v) + "\n" for v in value), encoding="utf-8")
        else:
            path.write_text(json.dumps(value), encoding="utf-8")
    spec: dict[str, Any] = {"root": dict(root)}
    if inputs:
        spec["inputs"] = dict(inputs)
    if defaults:
        spec["defaults"] = dict(defaults)
    if limits:
        spec["limits"] = dict(limits)
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if final:
        spec["finally"] = [dict(unit) for unit in final]
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": spec,
    }
    path = directory / filename
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def plan_of(directory: Path, root: Mapping[str, Any], **options: Any) -> Plan:
    return compile_plan(write_flow(directory, root, **options))


def run(plan: Plan, driver: FakeDriver, **options: Any) -> Done:
    return asyncio.run(Engine(plan, driver, **options).run())


def journal_of(records: Iterable[UnitRecord]) -> Journal:
    return FakeJournal({r.id: r for r in records})

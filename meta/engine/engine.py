"""One engine for every pattern: it walks a plan lazily and runs steps through a `Driver`.

Each section runs its frontier with at most `maxActive` live units; a section inside a visit is
itself one live unit of the enclosing section. A failure anywhere raises through every section
above it, and each section cancels its running units on the way out, so nothing new starts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meta.engine.deadlines import Deadlines
from meta.engine.driver import (
    Driver,
    Exit,
    FlowDriver,
    FlowTask,
    PodDriver,
    PodTask,
    Running,
    StepTask,
)
from meta.engine.frontiers import (
    Context,
    CycleFrontier,
    DagFrontier,
    Done,
    Frontier,
    GatherFrontier,
    ItemsFrontier,
    SequenceFrontier,
    Work,
    tree_frontier,
)
from meta.engine.records import (
    Journal,
    NullJournal,
    NullObserver,
    Observer,
    SectionRecord,
    UnitRecord,
)
from meta.errors import Fault, LimitExceeded, RunFailed, TemplateFault, UserError
from meta.flow.checks import NAME
from meta.flow.model import (
    Cases,
    FileInput,
    FlowRef,
    Generate,
    Origin,
    Scope,
    Section,
    Step,
    Unit,
    UnitSource,
    max_active,
)
from meta.flow.templates import TemplateProblem, evaluate, is_template, render
from meta.generate.plugins import Plugins, load_plugins
from meta.plan.generated import generate_plan
from meta.plan.plan import Plan

MAX_BACKOFF_SECONDS = 60.0
TAIL_AFTER_STOP_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class _Scope:
    """The flow in force (the root flow, or one reached through a flowRef) and its variables."""

    plan: Plan
    variables: Mapping[str, Any]
    chain: tuple[str, ...] = ()
    """The generate units this flow was generated under, outermost first."""


@dataclass(frozen=True, slots=True)
class _Parent:
    """The section a unit runs in."""

    id: str
    scope: Scope
    pod: str | None
    named: set[str] = field(default_factory=set, compare=False)
    """The ids its units took outside iterations: two templated names that render alike
    would otherwise share one id, one journal entry and one outputs folder."""


class Engine:
    def __init__(
        self,
        plan: Plan,
        driver: Driver,
        *,
        observer: Observer | None = None,
        journal: Journal | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self._plan = plan
        self._driver = driver
        self._observer = observer or NullObserver()
        self._journal = journal or NullJournal()
        self._finished = dict(self._journal.finished())
        self._plugins = plugins
        """The generators for `generate` units; loaded from entry points when first needed."""
        self._steps_reached = 0
        self._deadlines = Deadlines()

    async def run(self, within: str | None = None, upstream: tuple[Done, ...] = ()) -> Done:
        """Run the plan's flow to its end; its root's `Done` names where its outputs are.
        `within` and `upstream` run it as the flowRef of that id would run in place (a child
        flow): its units get the ids they would have there, and its root that upstream."""
        plan = self._plan
        scope = self._scope(plan)
        parent = _Parent(within or plan.flow.name, "macro", None)
        context = Context(scope.variables["inputs"])
        return await self._unit(scope, plan.flow.root, parent, "", context, upstream)

    @staticmethod
    def _scope(plan: Plan, chain: tuple[str, ...] = ()) -> _Scope:
        flow = {
            "name": plan.flow.name,
            "file": str(plan.flow.source),
            "dir": str(plan.flow.source.parent),
        }
        return _Scope(plan, {"inputs": plan.template_inputs(), "flow": flow}, chain)

    def _variables(self, scope: _Scope, context: Context) -> dict[str, Any]:
        variables = dict(scope.variables)
        if context.iteration is not None:
            variables.update(context.iteration)
        return variables

    def _render(self, scope: _Scope, context: Context, text: str, origin: Origin) -> str:
        if not is_template(text):
            return text
        try:
            return render(text, self._variables(scope, context))
        except TemplateProblem as problem:
            raise TemplateFault(_at(origin, context, str(problem))) from None

    async def _unit(
        self,
        scope: _Scope,
        unit: Unit | Cases,
        parent: _Parent,
        key: str,
        context: Context,
        upstream: tuple[Done, ...],
    ) -> Done:
        if isinstance(unit, Cases):
            unit = self._choose(scope, unit, context)
        name = unit.name
        if is_template(name):
            name = self._render(scope, context, name, unit.origin.at("name"))
            if not NAME.match(name):
                raise TemplateFault(
                    _at(
                        unit.origin.at("name"),
                        context,
                        f"rendered unit name {name!r} is not a valid name",
                    )
                )
        uid = f"{parent.id}/{key}/{name}" if key else f"{parent.id}/{name}"
        if not key:
            if uid in parent.named:
                raise TemplateFault(
                    _at(unit.origin.at("name"), context, f"another unit here is named {name!r} too")
                )
            parent.named.add(uid)
        if isinstance(unit, Step):
            return await self._step(scope, unit, name, uid, parent, context, upstream)
        if isinstance(unit, Generate):
            return await self._generate(scope, unit, name, uid, parent, upstream)
        if isinstance(unit, FlowRef):
            subplan = scope.plan.subplan(unit)
            if isinstance(self._driver, FlowDriver):
                return await self._flow(scope, subplan, name, uid, parent, upstream)
            return await self._nested(subplan, scope.chain, name, uid, parent, upstream)
        return await self._section(scope, unit, name, uid, parent, context, upstream)

    async def _nested(
        self,
        plan: Plan,
        chain: tuple[str, ...],
        name: str,
        uid: str,
        parent: _Parent,
        upstream: tuple[Done, ...],
    ) -> Done:
        """Run another flow's root as the unit `uid` (a flowRef, or a generated flow): with its
        own inputs, in the caller's section and pod, fed by the caller's upstream."""
        scope = self._scope(plan, chain)
        inner = _Parent(uid, parent.scope, parent.pod)
        context = Context(scope.variables["inputs"])
        done = await self._unit(scope, plan.flow.root, inner, "", context, upstream)
        return Done(name, done.output)

    async def _generate(
        self,
        scope: _Scope,
        unit: Generate,
        name: str,
        uid: str,
        parent: _Parent,
        upstream: tuple[Done, ...],
    ) -> Done:
        """Generate a flow from a description found at run time and run it as a nested unit."""
        chain = (*scope.chain, uid)
        limits = self._plan.flow.limits
        if len(chain) > limits.max_depth:
            raise LimitExceeded(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer,
                    f"generated flows nest deeper than spec.limits.maxDepth "
                    f"({limits.max_depth}): {' -> '.join(chain)}",
                )
            )
        description = self._source_file(scope, unit, "description", unit.description, upstream)
        data = None
        if unit.data is not None:
            data = self._source_file(scope, unit, "data", unit.data, upstream)
        try:
            plan = await asyncio.to_thread(
                generate_plan, description, data, unit.generator, self._load_plugins
            )
        except UserError as exc:
            # The faults name the description (or the flow made of it); say which unit asked.
            raise type(exc)(
                Fault(f.file, f.pointer, f"{f.reason} (generate unit {uid})") for f in exc.faults
            ) from None
        return await self._nested(plan, chain, name, uid, parent, upstream)

    def _load_plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = load_plugins()
        return self._plugins

    def _source_file(
        self,
        scope: _Scope,
        unit: Generate,
        role: str,
        source: UnitSource,
        upstream: tuple[Done, ...],
    ) -> Path:
        if source.input is not None:
            spec = scope.plan.inputs[source.input]
            if not isinstance(spec, FileInput):
                raise UserError(
                    Fault(
                        unit.origin.file,
                        unit.origin.pointer + f"/generate/{role}/input",
                        f"input '{source.input}' must be a file to be read as a {role}",
                    )
                )
            return spec.path
        producers = {done.name: done for done in upstream}
        producer = producers.get(source.from_unit or "")
        if producer is None:
            feeding = ", ".join(sorted(producers)) or "none"
            raise UserError(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer + f"/generate/{role}/fromUnit",
                    f"'{source.from_unit}' is not among the units whose outputs flow into "
                    f"'{unit.name}' (those are: {feeding})",
                )
            )
        path = Path(self._driver.outputs(producer.output)) / (source.file or "")
        if not path.is_file():
            raise UserError(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer + f"/generate/{role}/file",
                    f"unit '{source.from_unit}' left no file '{source.file}' in its outputs",
                )
            )
        return path

    def _choose(self, scope: _Scope, cases: Cases, context: Context) -> Unit:
        variables = self._variables(scope, context)
        for case in cases.cases:
            try:
                if evaluate(case.when, variables):
                    return case.unit
            except TemplateProblem as problem:
                raise TemplateFault(_at(case.origin.at("when"), context, str(problem))) from None
        path = context.iteration.get("path", "") if context.iteration else ""
        raise TemplateFault(
            Fault(
                context.source[0],
                context.source[1] + path,
                f"no case of the visit matches this node (cases at {cases.cases[0].origin.file}: "
                f"{cases.cases[0].origin.pointer.rsplit('/', 1)[0]})",
            )
        )

    async def _section(
        self,
        scope: _Scope,
        section: Section,
        name: str,
        uid: str,
        parent: _Parent,
        context: Context,
        upstream: tuple[Done, ...],
    ) -> Done:
        pod = parent.pod if parent.pod is not None else (uid if section.scope == "micro" else None)
        opens_pod = pod is not None and parent.pod is None
        limit = max_active(section)
        if opens_pod and isinstance(self._driver, PodDriver):
            return await self._pod(scope, section, name, uid, parent, context, upstream, limit)
        here = _Parent(uid, section.scope, pod)
        if opens_pod:
            await self._driver.open_pod(uid)
        try:
            frontier = self._frontier(scope, section, context, upstream)
            peak, count = await self._drive(scope, frontier, limit, here)
        finally:
            if opens_pod:
                await self._driver.close_pod(uid)
        self._observer.section_finished(
            SectionRecord(uid, name, section.pattern, section.scope, limit, peak, count)
        )
        parts = frontier.result()
        if len(parts) == 1:
            return Done(name, parts[0].output)
        self._driver.combine(uid, _named(parts))
        return Done(name, uid)

    async def _pod(
        self,
        scope: _Scope,
        section: Section,
        name: str,
        uid: str,
        parent: _Parent,
        context: Context,
        upstream: tuple[Done, ...],
        limit: int,
    ) -> Done:
        """A micro section run as one unit by a `PodDriver`: a quarterback runs its units."""
        driver = self._driver
        assert isinstance(driver, PodDriver)
        previous = self._finished.get(uid)
        if previous is not None:
            self._observer.unit_finished(previous)
            return Done(name, uid)
        task = PodTask(
            id=uid,
            name=name,
            section=parent.id,
            file=section.origin.file,
            pointer=section.origin.pointer,
            input=context.input,
            iteration=context.iteration,
            hidden=context.hidden,
            upstream=_named(upstream),
            attempt=1,
            max_active=limit,
        )
        return await self._whole(
            scope, name, uid, parent, lambda n: driver.start_pod(replace(task, attempt=n))
        )

    async def _flow(
        self,
        scope: _Scope,
        plan: Plan,
        name: str,
        uid: str,
        parent: _Parent,
        upstream: tuple[Done, ...],
    ) -> Done:
        """A flowRef run by a `FlowDriver` as a flow of its own. The journal is not asked: the
        child flow is its own record, and the driver finds it ended if it has."""
        driver = self._driver
        assert isinstance(driver, FlowDriver)
        task = FlowTask(uid, name, parent.id, plan, _named(upstream), 1)
        return await self._whole(
            scope, name, uid, parent, lambda n: driver.start_flow(replace(task, attempt=n))
        )

    async def _whole(
        self,
        scope: _Scope,
        name: str,
        uid: str,
        parent: _Parent,
        start: Callable[[int], Awaitable[Running]],
    ) -> Done:
        """A micro pod or a child flow, run as one unit: one attempt, no time limit of its own;
        the steps inside keep their retries and timeouts (retrying the whole would multiply
        them, a step's timeout would cut it short)."""
        await self._attempts(scope, name, uid, parent, 0, None, start)
        return Done(name, uid)

    async def run_pod(self, task: PodTask) -> Done:
        """Run the micro section a `PodTask` names, inside its pod (the quarterback's side): the
        same ids, inputs and upstream the engine that made the task would have given it."""
        plan, section = self._plan.section_at(task.file, task.pointer)
        scope = self._scope(plan)
        parent = _Parent(task.section, "macro", None)
        context = Context(task.input, task.iteration, hidden=task.hidden)
        upstream = tuple(Done(subdir, unit_id) for subdir, unit_id in task.upstream)
        return await self._section(scope, section, task.name, task.id, parent, context, upstream)

    def _frontier(
        self, scope: _Scope, section: Section, context: Context, upstream: tuple[Done, ...]
    ) -> Frontier:
        plan = scope.plan
        over = section.over
        frontier: Frontier
        if section.pattern == "sequence":
            return SequenceFrontier(section.units, context, upstream)
        if section.pattern in ("dag", "fanin"):
            frontier = DagFrontier(section.units, context, upstream)
        elif section.pattern == "fanout":
            assert over is not None and section.visit is not None
            frontier = ItemsFrontier(
                section.visit, plan.over(over), over, plan.located(over.input), upstream
            )
        elif section.pattern == "cycle":
            assert over is not None
            frontier = CycleFrontier(
                section.ring,
                section.rounds,
                plan.records(over),
                over,
                plan.located(over.input),
                upstream,
            )
        else:
            assert over is not None
            frontier = tree_frontier(section, plan.over(over), plan.located(over.input), upstream)
        if section.gather is not None:
            frontier = GatherFrontier(frontier, section.gather, context)
        return frontier

    async def _drive(
        self, scope: _Scope, frontier: Frontier, limit: int, here: _Parent
    ) -> tuple[int, int]:
        """Run a frontier to its end with at most `limit` live units; (peak live, units run)."""
        count = 0
        if limit == 1:
            while (work := frontier.next()) is not None:
                done = await self._unit(
                    scope, work.unit, here, work.key, work.context, work.upstream
                )
                frontier.complete(work, done)
                count += 1
            return min(count, 1), count
        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[Done], Work] = {}
        finished: deque[asyncio.Task[Done]] = deque()
        wake = asyncio.Event()

        def on_done(task: asyncio.Task[Done]) -> None:
            finished.append(task)
            wake.set()

        peak = 0
        try:
            while True:
                while len(running) < limit and (work := frontier.next()) is not None:
                    task = loop.create_task(
                        self._unit(scope, work.unit, here, work.key, work.context, work.upstream)
                    )
                    task.add_done_callback(on_done)
                    running[task] = work
                peak = max(peak, len(running))
                if not running:
                    return peak, count
                while not finished:
                    wake.clear()
                    await wake.wait()
                while finished:
                    task = finished.popleft()
                    work = running.pop(task)
                    frontier.complete(work, task.result())
                    count += 1
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _step(
        self,
        scope: _Scope,
        step: Step,
        name: str,
        uid: str,
        parent: _Parent,
        context: Context,
        upstream: tuple[Done, ...],
    ) -> Done:
        self._steps_reached += 1
        limit = self._plan.flow.limits.max_units
        if self._steps_reached > limit:
            chain = " -> ".join(scope.chain) or "the root flow"
            raise LimitExceeded(
                Fault(
                    step.origin.file,
                    step.origin.pointer,
                    f"the run reached more than spec.limits.maxUnits ({limit}) steps "
                    f"at {uid} (generated under: {chain})",
                )
            )
        previous = self._finished.get(uid)
        if previous is not None:
            self._observer.unit_finished(previous)
            return Done(name, uid)
        defaults = scope.plan.flow.defaults
        retries = defaults.retries if step.retries is None else step.retries
        timeout = defaults.timeout_seconds if step.timeout_seconds is None else step.timeout_seconds
        task = self._task(scope, step, name, uid, parent, context, upstream)
        start = self._driver.start
        await self._attempts(
            scope, name, uid, parent, retries, timeout, lambda n: start(_with_attempt(task, n))
        )
        return Done(name, uid)

    async def _attempts(
        self,
        scope: _Scope,
        name: str,
        uid: str,
        parent: _Parent,
        retries: int,
        timeout: float | None,
        start: Callable[[int], Awaitable[Running]],
    ) -> None:
        """Run attempts of one unit until one succeeds; `RunFailed` when the last one fails."""
        backoff = scope.plan.flow.defaults.retry_backoff_seconds
        attempt = 0
        while True:
            attempt += 1
            started = time.time()
            record = UnitRecord(uid, name, parent.id, parent.scope, "running", attempt, started)
            self._observer.unit_started(record)
            self._journal.record_started(record)
            exit_, reason = await self._attempt(start(attempt), timeout, record)
            if exit_.code == 0:
                record = _ended(record, "succeeded", exit_)
                self._journal.record_finished(record)
                self._observer.unit_finished(record)
                return
            if attempt > retries:
                record = _ended(record, "failed", exit_, reason)
                self._journal.record_finished(record)
                self._observer.unit_finished(record)
                raise RunFailed(uid, reason, exit_.stderr_tail)
            self._observer.unit_finished(_ended(record, "failed", exit_, reason))
            await asyncio.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))

    async def _attempt(
        self, starting: Awaitable[Running], timeout: float | None, record: UnitRecord
    ) -> tuple[Exit, str]:
        running = await starting
        limit = None if timeout is None else self._deadlines.start(timeout)
        try:
            exit_ = await running.wait()
        except asyncio.CancelledError:
            if limit is not None and limit.expired and limit.task.uncancel() <= limit.cancelling:
                await running.stop()
                return Exit(-1, await _tail_after_stop(running)), f"timed out after {timeout:g} s"
            await asyncio.shield(running.stop())
            self._observer.unit_finished(_ended(record, "cancelled", Exit(-1), "cancelled"))
            raise
        except BaseException:
            await asyncio.shield(running.stop())
            raise
        finally:
            if limit is not None:
                self._deadlines.end(limit)
        if exit_.reason:
            return exit_, exit_.reason
        reason = (
            f"exited with code {exit_.code}"
            if exit_.code >= 0
            else f"killed by signal {-exit_.code}"
        )
        return exit_, reason

    def _task(
        self,
        scope: _Scope,
        step: Step,
        name: str,
        uid: str,
        parent: _Parent,
        context: Context,
        upstream: tuple[Done, ...],
    ) -> StepTask:
        run = step.run
        if run.templated:
            origin = step.origin.at("run")
            command = tuple(
                self._render(scope, context, arg, origin.at("command", i))
                for i, arg in enumerate(run.command)
            )
            env: Mapping[str, str] = {
                k: self._render(scope, context, v, origin.at("env", k)) for k, v in run.env.items()
            }
            image = (
                None
                if run.image is None
                else self._render(scope, context, run.image, origin.at("image"))
            )
        else:
            command, env, image = run.command, run.env, run.image
        value = context.input
        if context.hidden and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in context.hidden}
        return StepTask(
            id=uid,
            name=name,
            section=parent.id,
            scope=parent.scope,
            command=command,
            env=env,
            image=image,
            input=value,
            upstream=_named(upstream),
            pod=parent.pod,
            workdir=scope.variables["flow"]["dir"],
            attempt=1,
            resources=run.resources,
        )


def _named(parts: tuple[Done, ...] | list[Done]) -> list[tuple[str, str]]:
    """(subdirectory name, unit id) per part; a name several parts share gets `.0`, `.1`..."""
    counts: dict[str, int] = {}
    for part in parts:
        counts[part.name] = counts.get(part.name, 0) + 1
    seen: dict[str, int] = {}
    named = []
    for part in parts:
        if counts[part.name] == 1:
            named.append((part.name, part.output))
        else:
            index = seen.get(part.name, 0)
            seen[part.name] = index + 1
            named.append((f"{part.name}.{index}", part.output))
    return named


def _with_attempt(task: StepTask, attempt: int) -> StepTask:
    if attempt == task.attempt:
        return task
    return replace(task, attempt=attempt)


def _ended(record: UnitRecord, state: Any, exit_: Exit, reason: str = "") -> UnitRecord:
    # Built whole: dataclasses.replace costs several times more, and this runs once per unit.
    return UnitRecord(
        id=record.id,
        name=record.name,
        section=record.section,
        scope=record.scope,
        state=state,
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=time.time(),
        exit_code=exit_.code,
        reason=reason,
        stderr_tail=exit_.stderr_tail,
        resumed=record.resumed,
    )


def _at(origin: Origin, context: Context, reason: str) -> Fault:
    where = ""
    if context.iteration is not None:
        file, prefix = context.source
        where = f" (for the node at {file}: {prefix + context.iteration.get('path', '') or '/'})"
    return Fault(origin.file, origin.pointer, reason + where)


async def _tail_after_stop(running: Running) -> str:
    """The stderr tail of a stopped attempt, when its driver has it at hand (a timed-out step's
    last words are what a person needs); a driver that has not is not waited for long."""
    try:
        ended = await asyncio.wait_for(running.wait(), TAIL_AFTER_STOP_SECONDS)
    except Exception:
        return ""
    return ended.stderr_tail

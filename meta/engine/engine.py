"""One engine for every pattern: it walks a plan lazily and runs steps through a `Driver`.

Each section runs its frontier with at most `maxActive` live units; a section inside a visit is
itself one live unit of the enclosing section. A failure anywhere raises through every section
above it, and each section cancels its running units on the way out, so nothing new starts.

Where whole units run is chosen once, when the engine is built: given a `PodDriver`, each
outermost micro section runs as one pod of its own (a quarterback drives its units there);
given a `FlowDriver`, each flowRef runs as a flow of its own. Without them the engine runs both
in place, through the driver's `open_pod`/`close_pod` and the referenced flow's root.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from meta.engine.attempts import Attempts, Start
from meta.engine.driver import Driver, FlowDriver, FlowTask, PodDriver, PodTask
from meta.engine.frontiers import Context, Done, Frontier, Ready, frontier_for
from meta.engine.generating import Generation
from meta.engine.records import Journal, Listener, NullJournal, NullListener, SectionRecord
from meta.engine.tasks import step_task, with_attempt
from meta.engine.visit import (
    FlowFrame,
    SectionFrame,
    Visit,
    begin,
    fed,
    feeding,
    is_met,
    make_visit,
    named,
    section_result,
)
from meta.errors import Fault, LimitExceeded
from meta.flow.model import Cases, FlowRef, Generate, Section, Step, Unit, max_active
from meta.generate.plugins import Plugins
from meta.plan.plan import Plan

PlaceSection = Callable[[Visit, Section, int], Awaitable[Done]]
PlaceFlow = Callable[[Visit, Plan], Awaitable[Done]]


class Engine:
    def __init__(
        self,
        plan: Plan,
        driver: Driver,
        *,
        pods: PodDriver | None = None,
        flows: FlowDriver | None = None,
        listener: Listener | None = None,
        journal: Journal | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self._plan = plan
        self._driver = driver
        self._listener = listener or NullListener()
        self._attempts = Attempts(self._listener, journal or NullJournal())
        self._generation = Generation(plan, driver.outputs, plugins)
        self._steps_reached = 0
        self._micro_pod: PlaceSection = (
            self._pod_here if pods is None else partial(self._pod_of_its_own, pods)
        )
        self._flow_ref: PlaceFlow = (
            self._flow_ref_here if flows is None else partial(self._flow_of_its_own, flows)
        )

    async def run(self, within: str | None = None, upstream: tuple[Done, ...] = ()) -> Done:
        """Run the plan's flow to its end; its root's `Done` names where its outputs are.
        `within` and `upstream` run it as the flowRef of that id would run in place (a child
        flow): its units get the ids they would have there, and its root that upstream."""
        plan = self._plan
        frame = FlowFrame.of(plan)
        parent = SectionFrame(within or plan.flow.name, "macro", None)
        return await self._unit(frame, plan.flow.root, parent, "", frame.root_context(), upstream)

    async def run_pod(self, task: PodTask) -> Done:
        """Run the micro section a `PodTask` names, inside its pod (the quarterback's side): the
        same ids, inputs and upstream the engine that made the task would have given it."""
        plan, section = self._plan.section_at(task.file, task.pointer)
        context = Context(task.input, task.iteration, hidden=task.hidden)
        upstream = fed(task.fed_by)
        parent = SectionFrame(task.section, "macro", None)
        visit = make_visit(FlowFrame.of(plan), parent, task.name, task.id, context, upstream)
        return await self._section(visit, section)

    async def _unit(
        self,
        frame: FlowFrame,
        unit: Unit | Cases,
        parent: SectionFrame,
        key: str,
        context: Context,
        upstream: tuple[Done, ...],
    ) -> Done:
        unit, visit = begin(frame, unit, parent, key, context, upstream)
        if not is_met(visit, unit):
            self._attempts.skip(visit, "condition")
            return Done(visit.name, visit.uid, "skipped")
        if isinstance(unit, Step):
            return await self._step(visit, unit)
        if isinstance(unit, Generate):
            plan, chain = await self._generation.plan(visit, unit)
            return await self._nested(visit, plan, chain)
        if isinstance(unit, FlowRef):
            return await self._flow_ref(visit, frame.plan.subplan(unit))
        return await self._section(visit, unit)

    async def _nested(self, visit: Visit, plan: Plan, chain: tuple[str, ...]) -> Done:
        """Run another flow's root as the visited unit (a flowRef, or a generated flow): with
        its own inputs, in the caller's section and pod, fed by the caller's upstream."""
        frame = FlowFrame.of(plan, chain)
        inner = SectionFrame(visit.uid, visit.parent.scope, visit.parent.pod)
        context = frame.root_context()
        done = await self._unit(frame, plan.flow.root, inner, "", context, visit.upstream)
        return Done(visit.name, done.unit_id, result=done.result)

    async def _flow_ref_here(self, visit: Visit, plan: Plan) -> Done:
        return await self._nested(visit, plan, visit.frame.chain)

    async def _flow_of_its_own(self, flows: FlowDriver, visit: Visit, plan: Plan) -> Done:
        """A flowRef run by a `FlowDriver` as a flow of its own. The journal is not asked: the
        child flow is its own record, and the driver finds it ended if it has."""
        task = FlowTask(
            visit.uid,
            visit.name,
            visit.parent.id,
            plan,
            named(visit.upstream),
            1,
            feeding(visit.upstream),
        )
        return await self._whole(visit, lambda n: flows.start_flow(replace(task, attempt=n)))

    async def _section(self, visit: Visit, section: Section) -> Done:
        limit = max_active(section)
        pod = visit.parent.pod
        if pod is None and section.scope == "micro":
            return await self._micro_pod(visit, section, limit)
        walked = await self._walk(visit, section, limit, pod)
        return self._section_done(visit, section, limit, *walked)

    async def _pod_here(self, visit: Visit, section: Section, limit: int) -> Done:
        """An outermost micro section whose units this engine drives, in one shared scratch."""
        await self._driver.open_pod(visit.uid)
        try:
            walked = await self._walk(visit, section, limit, visit.uid)
        finally:
            await self._driver.close_pod(visit.uid)
        return self._section_done(visit, section, limit, *walked)

    async def _pod_of_its_own(
        self, pods: PodDriver, visit: Visit, section: Section, limit: int
    ) -> Done:
        """An outermost micro section run by a `PodDriver` as one unit: a quarterback runs its
        units inside the pod."""
        previous = self._attempts.finished_before(visit.uid)
        if previous is not None:
            return Done(visit.name, visit.uid, result=previous.result)
        task = PodTask(
            id=visit.uid,
            name=visit.name,
            section=visit.parent.id,
            file=section.origin.file,
            pointer=section.origin.pointer,
            input=visit.context.input,
            iteration=visit.context.iteration,
            hidden=visit.context.hidden,
            upstream=named(visit.upstream),
            attempt=1,
            max_active=limit,
            fed_by=feeding(visit.upstream),
        )
        return await self._whole(visit, lambda n: pods.start_pod(replace(task, attempt=n)))

    async def _whole(self, visit: Visit, start: Start) -> Done:
        """A micro pod or a child flow, run as one unit: one attempt, no time limit of its own;
        the steps inside keep their retries and timeouts (retrying the whole would multiply
        them, a step's timeout would cut it short)."""
        record = await self._attempts.run(visit, 0, None, start)
        return Done(visit.name, visit.uid, result=record.result)

    async def _walk(
        self, visit: Visit, section: Section, limit: int, pod: str | None
    ) -> tuple[Frontier, int, int]:
        """Run the section's frontier to its end: (the frontier, peak live units, units run)."""
        here = SectionFrame(visit.uid, section.scope, pod)
        frontier = frontier_for(visit.frame.plan, section, visit.context, visit.upstream)
        if limit == 1:
            count = await self._drive_in_turn(visit.frame, frontier, here)
            return frontier, min(count, 1), count
        peak, count = await self._drive(visit.frame, frontier, limit, here)
        return frontier, peak, count

    def _section_done(
        self, visit: Visit, section: Section, limit: int, frontier: Frontier, peak: int, count: int
    ) -> Done:
        self._listener.section_finished(
            SectionRecord(visit.uid, visit.name, section.pattern, section.scope, limit, peak, count)
        )
        parts = frontier.result()
        result = section_result(parts)
        if len(parts) == 1:
            return Done(visit.name, parts[0].unit_id, result=result)
        self._driver.combine(visit.uid, named(parts))
        return Done(visit.name, visit.uid, result=result)

    async def _drive_in_turn(self, frame: FlowFrame, frontier: Frontier, here: SectionFrame) -> int:
        """One unit at a time, each awaited in turn (exact pattern order); the units run."""
        count = 0
        while (ready := frontier.next()) is not None:
            done = await self._unit(
                frame, ready.unit, here, ready.key, ready.context, ready.upstream
            )
            frontier.complete(ready, done)
            count += 1
        return count

    async def _drive(
        self, frame: FlowFrame, frontier: Frontier, limit: int, here: SectionFrame
    ) -> tuple[int, int]:
        """Run a frontier to its end with at most `limit` live units; (peak live, units run)."""
        count = 0
        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[Done], Ready] = {}
        finished: deque[asyncio.Task[Done]] = deque()
        wake = asyncio.Event()

        def on_done(task: asyncio.Task[Done]) -> None:
            finished.append(task)
            wake.set()

        peak = 0
        try:
            while True:
                while len(running) < limit and (ready := frontier.next()) is not None:
                    task = loop.create_task(self._ready(frame, here, ready))
                    task.add_done_callback(on_done)
                    running[task] = ready
                peak = max(peak, len(running))
                if not running:
                    return peak, count
                while not finished:
                    wake.clear()
                    await wake.wait()
                while finished:
                    task = finished.popleft()
                    ready = running.pop(task)
                    frontier.complete(ready, task.result())
                    count += 1
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _ready(
        self, frame: FlowFrame, here: SectionFrame, ready: Ready
    ) -> Coroutine[Any, Any, Done]:
        return self._unit(frame, ready.unit, here, ready.key, ready.context, ready.upstream)

    async def _step(self, visit: Visit, step: Step) -> Done:
        self._steps_reached += 1
        limit = self._plan.flow.limits.max_units
        if self._steps_reached > limit:
            chain = " -> ".join(visit.frame.chain) or "the root flow"
            raise LimitExceeded(
                Fault(
                    step.origin.file,
                    step.origin.pointer,
                    f"the run reached more than spec.limits.maxUnits ({limit}) steps "
                    f"at {visit.uid} (generated under: {chain})",
                )
            )
        previous = self._attempts.finished_before(visit.uid)
        if previous is not None:
            return Done(visit.name, visit.uid, result=previous.result)
        defaults = visit.frame.plan.flow.defaults
        retries = defaults.retries if step.retries is None else step.retries
        timeout = defaults.timeout_seconds if step.timeout_seconds is None else step.timeout_seconds
        task = step_task(visit, step)
        start = self._driver.start
        record = await self._attempts.run(
            visit, retries, timeout, lambda n: start(with_attempt(task, n))
        )
        return Done(visit.name, visit.uid, result=record.result)

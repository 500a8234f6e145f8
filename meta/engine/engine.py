"""One engine for every pattern: it walks a plan lazily and runs steps through a `Driver`.

Each section runs its frontier with at most `maxActive` live units; a section inside a visit is
itself one live unit of the enclosing section. A failure raises through every section above it
that has `onFailure: stop` (the default), and each such section cancels its running units on
the way out, so nothing new starts. A section with `onFailure: continue` keeps the failure: the
failed unit ends as `failed`, every unit it flows into is `skipped` (reason upstream-failed), the
others run, and the section fails at its end naming every failure. A section's `finally` units,
and the flow's, run once its units have ended, whatever happened (not when the run is stopped
from outside: a resumed run runs them).

Where whole units run is chosen once, when the engine is built: given a `PodDriver`, each
outermost micro section runs as one pod of its own (a quarterback drives its units there);
given a `FlowDriver`, each flowRef runs as a flow of its own. Without them the engine runs both
in place, through the driver's `open_pod`/`close_pod` and the referenced flow's root.

Given a `StoreCache`, a step or section that says `cache:` is looked up by its key before it
runs (`meta.engine.caching`): a hit runs nothing and stands for the unit as `cached`; a unit
that ran is kept as an entry for the runs after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from meta.engine.attempts import Attempts, Start
from meta.engine.caching import Caching, StoreCache, cache_of_section, cache_of_step
from meta.engine.driver import Driver, FlowDriver, FlowTask, PodDriver, PodTask
from meta.engine.frontiers import Context, Done, Frontier, Ready, frontier_for
from meta.engine.generating import Generation
from meta.engine.records import (
    CONDITION,
    UPSTREAM_FAILED,
    Journal,
    Listener,
    NullJournal,
    NullListener,
    SectionRecord,
)
from meta.engine.tasks import step_task, with_attempt
from meta.engine.visit import (
    FlowFrame,
    SectionFrame,
    Visit,
    begin,
    ended_from_outside,
    fed,
    feeding,
    is_met,
    make_visit,
    named,
    section_result,
    upstream_variable,
)
from meta.errors import Failure, Fault, LimitExceeded, RunFailed, UserError
from meta.flow.checks import FINALLY
from meta.flow.model import Cases, FlowRef, Generate, Section, Step, Unit, max_active
from meta.plan.plan import Plan

if TYPE_CHECKING:
    from meta.generate.plugins import Plugins

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
        cache: StoreCache | None = None,
    ) -> None:
        """`cache`: where units that say `cache:` reuse outputs across runs (None: they run
        as any other unit)."""
        self._plan = plan
        self._driver = driver
        self._listener = listener or NullListener()
        journal = journal or NullJournal()
        self._attempts = Attempts(self._listener, journal, plan.flow.parallelism)
        self._caching = Caching(cache, self._listener, journal)
        self._generation = Generation(plan, driver.outputs, plugins)
        self._steps_reached = 0
        self._pod_parent: SectionFrame | None = None
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
        return await self._flow(frame, parent, frame.root_context(), upstream)

    async def _flow(
        self, frame: FlowFrame, parent: SectionFrame, context: Context, upstream: tuple[Done, ...]
    ) -> Done:
        """A flow's root, then the flow's `finally` units whatever became of the root."""
        unit, visit = begin(frame, frame.plan.flow.root, parent, "", context, upstream)
        final = frame.plan.flow.final
        if not final:
            return await self._visit(unit, visit)
        here = SectionFrame(parent.id, parent.scope, parent.pod, outer=parent)
        try:
            done = await self._visit(unit, visit)
        except RunFailed as failure:
            here.ending.ended.append(Done(visit.name, visit.uid, "failed", renewed=True))
            failures = await self._finally(visit, final, here, failure.failures, parent)
            raise RunFailed.of(failures) from None
        except asyncio.CancelledError:
            if parent.stopping():
                await self._finally(visit, final, here, (), parent)
            raise
        here.ending.ended.append(done)
        failures = await self._finally(visit, final, here, (), parent)
        if failures:
            raise RunFailed.of(failures)
        return done

    async def _finally(
        self,
        visit: Visit,
        units: tuple[Unit, ...],
        here: SectionFrame,
        failures: Sequence[Failure],
        ends: SectionFrame,
    ) -> list[Failure]:
        """`_finally_units`, run to their end also when a failure stops a section around this
        one while they run: had it come a moment earlier, they would have run whole. A cancel
        from outside (an interrupt, with no failure stopping) stops them."""
        if not units:
            return list(failures)
        run = asyncio.ensure_future(self._finally_units(visit, units, here, failures, ends))
        stopped = False
        while True:
            try:
                ended = await asyncio.shield(run)
                break
            except asyncio.CancelledError:
                if run.done() or not visit.parent.stopping():
                    run.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
                    raise
                stopped = True
        if stopped:
            raise asyncio.CancelledError
        return ended

    async def _finally_units(
        self,
        visit: Visit,
        units: tuple[Unit, ...],
        here: SectionFrame,
        failures: Sequence[Failure],
        ends: SectionFrame,
    ) -> list[Failure]:
        """Run `finally` units in order, each whatever became of the ones before; every
        failure, the section's first, then the finally units'. They see how the units of
        `here` ended (`upstream`) and every failure (`failures`), and read the outputs of
        those that succeeded. Those that finished in an earlier session run again only if
        something ran in this one before them, in the section they end (`ends`: `here`, or
        for a flow's, the frame its root runs in) or in an earlier finally unit."""
        failures = list(failures)
        ended = tuple(replace(done, shown=True) for done in here.ending.ended if done is not None)
        frame = SectionFrame(
            here.id, here.scope, here.pod, outer=here, always=True, renews=ends, shields=True
        )
        for unit in units:
            # Each sees the failures so far: the earlier finally units' too.
            variables = {
                "upstream": upstream_variable(ended),
                "failures": [{"unit": f.unit_id, "reason": f.reason} for f in failures],
            }
            iteration = {**(visit.context.iteration or {}), **variables}
            context = replace(visit.context, iteration=iteration)
            try:
                await self._unit(visit.frame, unit, frame, FINALLY, context, ended)
            except RunFailed as failure:
                failures.extend(failure.failures)
        return failures

    async def run_pod(self, task: PodTask) -> Done:
        """Run the micro section a `PodTask` names, inside its pod (the quarterback's side): the
        same ids, inputs and upstream the engine that made the task would have given it."""
        plan, section = self._plan.section_at(task.file, task.pointer)
        context = Context(task.input, task.iteration, hidden=task.hidden)
        upstream = fed(task.fed_by)
        parent = SectionFrame(task.section, "macro", None)
        self._pod_parent = parent
        visit = make_visit(FlowFrame.of(plan), parent, task.name, task.id, context, upstream)
        return await self._section(visit, section)

    def wind_down(self) -> None:
        """The pod of `run_pod` is asked to end early, because the section holding it stops
        after a failure: cancelling the run now runs the section's `finally` units, as the
        same cancel does when the engine runs the section in place."""
        if self._pod_parent is not None:
            self._pod_parent.ending.stopping = True

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
        return await self._visit(unit, visit)

    async def _visit(self, unit: Unit, visit: Visit) -> Done:
        frame = visit.frame
        try:
            if not is_met(visit, unit):
                renewed = self._attempts.skip(visit, CONDITION)
                if renewed:
                    visit.parent.ran_here()
                return Done(visit.name, visit.uid, "skipped", reason=CONDITION, renewed=renewed)
            if isinstance(unit, Step):
                return await self._step(visit, unit)
            if isinstance(unit, Generate):
                plan, chain = await self._generation.plan(visit, unit)
                return await self._nested(visit, plan, chain)
            if isinstance(unit, FlowRef):
                return await self._flow_ref(visit, frame.plan.subplan(unit))
            return await self._section(visit, unit)
        except UserError as fault:
            if not visit.parent.always or isinstance(fault, LimitExceeded):
                raise
            # Under a finally unit, a fault met on what it is shown (a template over a result
            # a failed unit never wrote) fails the unit that meets it, as its own failure would:
            # it hides neither the failure before it nor the finally units that follow.
            raise self._faulted(unit, visit, fault) from None

    def _faulted(self, unit: Unit, visit: Visit, fault: UserError) -> RunFailed:
        reason = fault.one_line()
        if isinstance(unit, Step):
            self._attempts.fail(visit, reason)
        elif isinstance(unit, Section):
            record = SectionRecord(
                visit.uid, visit.name, unit.pattern, unit.scope, 0, 0, 0, "failed"
            )
            self._listener.section_finished(record)
        return RunFailed(visit.uid, reason)

    async def _nested(self, visit: Visit, plan: Plan, chain: tuple[str, ...]) -> Done:
        """Run another flow's root as the visited unit (a flowRef, or a generated flow): with
        its own inputs, in the caller's section and pod, fed by the caller's upstream."""
        frame = FlowFrame.of(plan, chain)
        inner = SectionFrame(
            visit.uid,
            visit.parent.scope,
            visit.parent.pod,
            outer=visit.parent,
            always=visit.parent.always,
            renews=visit.parent.renews,
        )
        with visit.parent.ending.activity():
            done = await self._flow(frame, inner, frame.root_context(), visit.upstream)
        return replace(done, name=visit.name)

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
        cache = cache_of_section(section) if self._caching.store is not None else None
        if cache is None:
            return await self._section_run(visit, section)
        resumed = self._resumed(visit)
        if resumed is not None:
            return resumed
        key = await self._caching.section_key(visit, section, cache)
        entry = await self._caching.reused(key, visit)
        if entry is not None:
            return _from_cache(visit, entry.extra)
        done = await self._section_run(visit, section)
        await self._caching.keep(key, visit, done, _extra(done))
        return done

    async def _section_run(self, visit: Visit, section: Section) -> Done:
        limit = max_active(section)
        pod = visit.parent.pod
        if pod is None and section.scope == "micro":
            return await self._micro_pod(visit, section, limit)
        with visit.parent.ending.activity():
            return await self._walk_to_end(visit, section, limit, pod)

    async def _pod_here(self, visit: Visit, section: Section, limit: int) -> Done:
        """An outermost micro section whose units this engine drives, in one shared scratch
        (its `finally` units too)."""
        await self._driver.open_pod(visit.uid)
        try:
            with visit.parent.ending.activity():
                return await self._walk_to_end(visit, section, limit, visit.uid)
        finally:
            await self._driver.close_pod(visit.uid)

    async def _walk_to_end(
        self, visit: Visit, section: Section, limit: int, pod: str | None
    ) -> Done:
        """Walk the section, then run its `finally` units whatever became of the walk (unless
        it was stopped from outside); `RunFailed` naming every failure, if any."""
        parent = visit.parent
        here = SectionFrame(
            visit.uid,
            section.scope,
            pod,
            outer=parent,
            always=parent.always,
            renews=parent.renews,
            absorbs=section.on_failure == "continue",
        )
        here.ending.keep = bool(section.final)
        try:
            frontier = await self._walk(visit, section, limit, here)
        except RunFailed as failure:
            # Its units are all ended now: a cancel that reaches the finally units comes from
            # outside, and must not run the finally units of sections inside them.
            here.ending.stopping = False
            failures = await self._finally(visit, section.final, here, failure.failures, here)
            self._section_record(visit, section, limit, here, "failed")
            raise RunFailed.of(failures) from None
        except asyncio.CancelledError:
            if section.final and parent.stopping():
                await self._finally(visit, section.final, here, (), here)
            raise
        failures = await self._finally(visit, section.final, here, here.ending.failures, here)
        if failures:
            self._section_record(visit, section, limit, here, "failed")
            raise RunFailed.of(failures)
        self._section_record(visit, section, limit, here, "succeeded")
        return self._section_done(visit, frontier, here.ending.ran)

    async def _pod_of_its_own(
        self, pods: PodDriver, visit: Visit, section: Section, limit: int
    ) -> Done:
        """An outermost micro section run by a `PodDriver` as one unit: a quarterback runs its
        units inside the pod."""
        resumed = self._resumed(visit)
        if resumed is not None:
            return resumed
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
        return Done(visit.name, visit.uid, result=record.result, renewed=True)

    async def _walk(
        self, visit: Visit, section: Section, limit: int, here: SectionFrame
    ) -> Frontier:
        """Run the section's frontier to its end (its peak of live units and the units run are
        counted on `here.ending`, also when a failure ends it early)."""
        frontier = frontier_for(visit.frame.plan, section, visit.context, visit.upstream)
        stop = section.on_failure == "stop"
        if limit == 1:
            await self._drive_in_turn(visit.frame, frontier, here, stop)
        else:
            await self._drive(visit.frame, frontier, limit, here, stop)
        return frontier

    def _section_record(
        self, visit: Visit, section: Section, limit: int, here: SectionFrame, state: str
    ) -> None:
        ending = here.ending
        self._listener.section_finished(
            SectionRecord(
                visit.uid,
                visit.name,
                section.pattern,
                section.scope,
                limit,
                ending.peak,
                ending.units_run,
                state,
            )
        )

    def _section_done(self, visit: Visit, frontier: Frontier, renewed: bool) -> Done:
        parts = frontier.result()
        result = section_result(parts)
        if len(parts) == 1:
            return Done(visit.name, parts[0].unit_id, result=result, renewed=renewed)
        combined = named(parts)
        self._driver.combine(visit.uid, combined)
        self._caching.combined(visit.uid, combined)
        return Done(visit.name, visit.uid, result=result, renewed=renewed)

    async def _drive_in_turn(
        self, frame: FlowFrame, frontier: Frontier, here: SectionFrame, stop: bool
    ) -> None:
        """One unit at a time, each awaited in turn (exact pattern order)."""
        ending = here.ending
        while (ready := frontier.next()) is not None:
            if here.halted():
                await ended_from_outside()
            done = await self._ready(frame, here, ready, stop)
            frontier.complete(ready, done)
            ending.units_run += 1

    async def _drive(
        self, frame: FlowFrame, frontier: Frontier, limit: int, here: SectionFrame, stop: bool
    ) -> None:
        """Run a frontier to its end with at most `limit` live units."""
        ending = here.ending
        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[Done], Ready] = {}
        walked: asyncio.Future[None] = loop.create_future()
        """Resolved when the frontier is walked to its end, or with what stopped the walk."""

        def fill() -> None:
            if here.halted():
                # A failure on its way out ends this section: nothing new starts, and the walk
                # is not over (not even with nothing running): the failure cancels it.
                return
            while len(running) < limit and (ready := frontier.next()) is not None:
                task = loop.create_task(self._ready(frame, here, ready, stop))
                task.add_done_callback(on_done)
                running[task] = ready
            if not running:
                walked.set_result(None)

        def on_done(task: asyncio.Task[Done]) -> None:
            # A unit's end is taken, and the next units started, in the callback that hears it:
            # waking this coroutine to do it would cost every unit another turn of the loop.
            ready = running.pop(task, None)
            if ready is None or walked.done():
                if not task.cancelled():
                    # Taken: the walk ended already, with what stopped it first.
                    task.exception()
                return
            try:
                frontier.complete(ready, task.result())
                ending.units_run += 1
                fill()
            except BaseException as exc:
                # Raised where the walk is awaited.
                walked.set_exception(exc)

        try:
            fill()
            await walked
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _ready(self, frame: FlowFrame, here: SectionFrame, ready: Ready, stop: bool) -> Done:
        """Run one unit of a section, or skip it when a unit that flows into it did not
        succeed. Its failure stops the section (`stop`), or is kept and ends it as failed."""
        unit, visit = begin(frame, ready.unit, here, ready.key, ready.context, ready.upstream)
        ending = here.ending
        # Its place among the section's units as they became ready (a fanout's: item order),
        # which is how the finally units number units of one name.
        slot = ending.hold() if ending.keep else 0
        if any(part.failing for part in ready.upstream):
            self._attempts.skip(visit, UPSTREAM_FAILED)
            done = Done(visit.name, visit.uid, "skipped", reason=UPSTREAM_FAILED)
        else:
            try:
                done = await self._visit(unit, visit)
            except asyncio.CancelledError:
                if ending.keep and (visit.uid in ending.started or not isinstance(unit, Step)):
                    # Started, then stopped by a failure: the finally units see it so.
                    ending.ended[slot] = Done(visit.name, visit.uid, "cancelled", renewed=True)
                raise
            except RunFailed as failure:
                done = Done(visit.name, visit.uid, "failed", renewed=True)
                if ending.keep:
                    ending.ended[slot] = done
                if stop:
                    ending.stopping = True
                    here.halt()
                    raise
                ending.failures.extend(failure.failures)
                return done
        if ending.keep:
            ending.ended[slot] = done
        return done

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
        resumed = self._resumed(visit)
        if resumed is not None:
            return resumed
        defaults = visit.frame.plan.flow.defaults
        retries = defaults.retries if step.retries is None else step.retries
        timeout = defaults.timeout_seconds if step.timeout_seconds is None else step.timeout_seconds
        task = step_task(visit, step)
        cache = cache_of_step(step, defaults.cache) if self._caching.store is not None else None
        key = None
        if cache is not None:
            key = await self._caching.step_key(task, cache, visit)
            entry = await self._caching.reused(key, visit)
            if entry is not None:
                return _from_cache(visit, entry.extra)
        start = self._driver.start
        record = await self._attempts.run(
            visit, retries, timeout, lambda n: start(with_attempt(task, n))
        )
        done = Done(visit.name, visit.uid, result=record.result, renewed=True)
        if key is not None:
            await self._caching.keep(key, visit, done, _extra(done))
        return done

    def _resumed(self, visit: Visit) -> Done | None:
        """The unit as an earlier session of the run left it, when it finished there (a
        `finally` unit runs again in a session that ran something in its section)."""
        if visit.parent.runs_again() or any(part.renewed for part in visit.upstream):
            # A unit it reads is not as it was (it ran again: its outputs were found changed or
            # gone, or it failed before; or it is skipped now): what it made is stale.
            return None
        previous = self._attempts.finished_before(visit.uid)
        if previous is None:
            return None
        if previous.state == "skipped":
            return Done(visit.name, visit.uid, "skipped", reason=previous.reason)
        return Done(visit.name, visit.uid, "cached", result=previous.result)


def _from_cache(visit: Visit, extra: Mapping[str, Any]) -> Done:
    """A unit not on record whose outputs the cache gave: news to the run's record."""
    visit.parent.ran_here()
    return Done(visit.name, visit.uid, "cached", result=extra.get("result"), renewed=True)


def _extra(done: Done) -> dict[str, object] | None:
    """What a cache entry keeps besides the outputs: the unit's result."""
    return None if done.result is None else {"result": done.result}

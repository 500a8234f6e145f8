"""What one visit of a unit carries: the flow in force, the section it runs in, its name and id,
what it runs with and the units whose outputs flow into it; and how a visit is begun (a case
chosen, a templated name rendered, the id checked for a clash)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

from meta.engine.driver import Feeder
from meta.engine.frontiers import OK_STATES, Context, Done, DoneState
from meta.errors import Failure, Fault, TemplateFault
from meta.flow.checks import name_problem
from meta.flow.model import Cases, Origin, Scope, Unit
from meta.flow.templates import TemplateProblem, holds, is_template, render
from meta.plan.plan import Plan

SHOWN_PATH = 400
"""The longest data path a fault shows whole (cut in the middle beyond it)."""


@dataclass(frozen=True, slots=True)
class FlowFrame:
    """The flow in force (the root flow, or one reached through a flowRef or generated) and the
    template variables it gives every unit."""

    plan: Plan
    variables: Mapping[str, Any]
    chain: tuple[str, ...] = ()
    """The generate units this flow was generated under, outermost first."""

    @classmethod
    def of(cls, plan: Plan, chain: tuple[str, ...] = ()) -> FlowFrame:
        flow = {
            "name": plan.flow.name,
            "file": str(plan.flow.source),
            "dir": str(plan.flow.source.parent),
        }
        return cls(plan, {"inputs": plan.template_inputs(), "flow": flow}, chain)

    def root_context(self) -> Context:
        """What the flow's root unit runs with: the flow's inputs."""
        return Context(self.variables["inputs"])

    @property
    def directory(self) -> str:
        """Where the flow's steps start (the flow file's folder)."""
        directory: str = self.variables["flow"]["dir"]
        return directory

    def variables_for(self, context: Context, upstream: tuple[Done, ...]) -> dict[str, Any]:
        """The template variables of a unit run with `context`, fed by `upstream`."""
        variables = dict(self.variables)
        if context.iteration is not None:
            variables.update(context.iteration)
        variables["upstream"] = upstream_variable(upstream)
        return variables


@dataclass(slots=True, eq=False)
class Ending:
    """How a section's units ended so far: what its `finally` units will be shown."""

    keep: bool = False
    """Whether to keep `ended` (only a section with finally units needs it: a walk over a
    tree must not hold every node it visited)."""
    ended: list[Done | None] = field(default_factory=list)
    """Each unit that ended, in the order the units became ready (None: not ended, or never
    started)."""
    started: set[str] = field(default_factory=set)
    """The steps here whose attempt started (kept as `ended` is)."""
    failures: list[Failure] = field(default_factory=list)
    """Failures of its units under `onFailure: continue`, in the order they happened."""
    stopping: bool = False
    """A unit failed under `onFailure: stop`: the units still running are being cancelled."""
    halted: bool = False
    """A failure is on its way out through this section (it ends it once the finally units
    it meets first have run): start nothing new here."""
    peak: int = 0
    """The most units that were active at once."""
    units_run: int = 0
    active: int = 0
    """Its units active now: in an attempt (holding a turn under `spec.parallelism`), or a
    section or flow it runs in place. A unit waiting for its turn, or to retry, is not."""
    ran: bool = False
    """Something here, or in a section or flow inside, is not as an earlier session left it
    (an attempt started, a unit came from the cache, or one on record was skipped this time):
    its `finally` units run again even if they finished in an earlier session (they would be
    shown states that changed), and what reads it and finished before runs again."""

    def hold(self) -> int:
        """A place in `ended` for a unit that became ready."""
        self.ended.append(None)
        return len(self.ended) - 1

    @contextlib.contextmanager
    def activity(self) -> Iterator[None]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            yield
        finally:
            self.active -= 1


@dataclass(frozen=True, slots=True)
class SectionFrame:
    """The section a unit runs in."""

    id: str
    scope: Scope
    pod: str | None
    """The micro section (pod) its units share, or None in a macro section."""
    named: set[str] = field(default_factory=set, compare=False)
    """The ids its units took outside iterations: two templated names that render alike
    would otherwise share one id, one journal entry and one outputs folder."""
    outer: SectionFrame | None = field(default=None, compare=False)
    """The section this one runs in, when the engine walks that one too."""
    always: bool = False
    """Its units are `finally` units (or inside one): they run whatever became of the units
    before them, and a fault they meet fails the unit meeting it rather than the run."""
    renews: SectionFrame | None = field(default=None, compare=False)
    """For `finally` units (and what they hold): the section they end. If something there ran
    in this session (`ending.ran`, an earlier finally unit too), they run even if the journal
    says they finished before; a session that ran nothing there (a finished run resumed) takes
    them from the journal, as it takes the rest."""
    absorbs: bool = False
    """A failure of its units ends here (`onFailure: continue`): it goes no further out."""
    shields: bool = False
    """The frame of `finally` units: a failure of one goes no further out (the next one runs
    whatever became of it), and the failure that runs them does not stop them."""
    ending: Ending = field(default_factory=Ending, compare=False)

    def halt(self) -> None:
        """A unit here failed under `onFailure: stop`: this section, and every one the failure
        will end on its way out, start nothing new from now on, while the finally units met on
        the way run (nothing new starts anywhere the failure stops, but finally units)."""
        frame: SectionFrame | None = self
        while frame is not None and not frame.shields:
            frame.ending.halted = True
            frame = frame.outer
            if frame is not None and frame.absorbs:
                return

    def ran_here(self) -> None:
        """Something in this section is not as an earlier session left it: it, and every
        section it runs in, are marked (each once: the walk stops at one marked before)."""
        frame: SectionFrame | None = self
        while frame is not None and not frame.ending.ran:
            frame.ending.ran = True
            frame = frame.outer

    def runs_again(self) -> bool:
        """Whether its units run even if the journal says they finished before (`renews`)."""
        return self.renews is not None and self.renews.ending.ran

    def halted(self) -> bool:
        """Whether a failure on its way out will end this section: its units start nothing
        new. The `finally` units a failure runs are not stopped by it (nor what they hold)."""
        frame: SectionFrame | None = self
        while frame is not None:
            if frame.ending.halted:
                return True
            if frame.shields:
                return False
            frame = frame.outer
        return False

    def stopping(self) -> bool:
        """Whether this section, or one it runs in, is cancelling its units after a failure
        (rather than being cancelled from outside: an interrupt, an operator that stops)."""
        frame: SectionFrame | None = self
        while frame is not None:
            if frame.ending.stopping:
                return True
            frame = frame.outer
        return False


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit of one unit: everything the engine needs to run it."""

    frame: FlowFrame
    parent: SectionFrame
    name: str
    uid: str
    context: Context
    upstream: tuple[Done, ...]
    lazy: Variables

    @property
    def variables(self) -> Mapping[str, Any]:
        """Its template variables (the flow's, the iteration's and `upstream`)."""
        return self.lazy.get()

    def render(self, text: str, origin: Origin, *path: str | int) -> str:
        return render_at(self.variables, self.context, text, origin, *path)


class Variables:
    """A unit's template variables, made when first asked for: most units render nothing, and
    this is on every unit's path."""

    __slots__ = ("_context", "_frame", "_upstream", "_value")

    def __init__(self, frame: FlowFrame, context: Context, upstream: tuple[Done, ...]) -> None:
        self._frame = frame
        self._context = context
        self._upstream = upstream
        self._value: Mapping[str, Any] | None = None

    def get(self) -> Mapping[str, Any]:
        if self._value is None:
            self._value = self._frame.variables_for(self._context, self._upstream)
        return self._value


async def ended_from_outside() -> NoReturn:
    """What a unit, or a walk, of a halted section waits for (see `SectionFrame.halt`): the
    failure on its way out cancels it, once the finally units it meets first have run."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("only a cancel ends this wait")


def make_visit(
    frame: FlowFrame,
    parent: SectionFrame,
    name: str,
    uid: str,
    context: Context,
    upstream: tuple[Done, ...],
) -> Visit:
    return Visit(frame, parent, name, uid, context, upstream, Variables(frame, context, upstream))


def render_at(
    variables: Mapping[str, Any], context: Context, text: str, origin: Origin, *path: str | int
) -> str:
    """A template rendered with `variables`; a fault names `origin.at(*path)` (made only
    then: this runs for every templated field of every unit) and the data node."""
    if not is_template(text):
        return text
    try:
        return render(text, variables)
    except TemplateProblem as problem:
        raise TemplateFault(located(origin.at(*path), context, str(problem))) from None


def upstream_variable(upstream: tuple[Done, ...]) -> dict[str, dict[str, Any]]:
    """The template variable `upstream`: `{NAME: {state, cached, result}}` for every unit that
    feeds this one, skipped ones too, named like their META_UPSTREAM subdirectories. A unit
    whose outputs were reused (the cache, or an earlier session of a resumed run) is
    `succeeded`, and `cached`: a condition decides as it would have in one uninterrupted run."""
    return {
        name: {
            "state": "succeeded" if done.state in OK_STATES else done.state,
            "cached": done.state == "cached",
            "result": done.result,
        }
        for name, done in _names(upstream)
    }


def is_met(visit: Visit, unit: Unit) -> bool:
    """Whether the unit's `when` holds in this visit (a unit without one always runs)."""
    if unit.when is None:
        return True
    try:
        return holds(unit.when, visit.variables)
    except TemplateProblem as problem:
        raise TemplateFault(located(unit.origin.at("when"), visit.context, str(problem))) from None


def begin(
    frame: FlowFrame,
    unit: Unit | Cases,
    parent: SectionFrame,
    key: str,
    context: Context,
    upstream: tuple[Done, ...],
) -> tuple[Unit, Visit]:
    """The unit to run (the case that matches, for `cases`) and its visit, named and given its
    id: the parent's id, the instance key inside iterations, and the rendered name."""
    variables = Variables(frame, context, upstream)
    if isinstance(unit, Cases):
        unit = _choose(variables.get(), unit, context)
    name = unit.name
    if is_template(name):
        name = render_at(variables.get(), context, name, unit.origin, "name")
        problem = name_problem(name)
        if problem is not None:
            raise TemplateFault(located(unit.origin.at("name"), context, f"rendered {problem}"))
    uid = f"{parent.id}/{key}/{name}" if key else f"{parent.id}/{name}"
    if not key:
        if uid in parent.named:
            raise TemplateFault(
                located(unit.origin.at("name"), context, f"another unit here is named {name!r} too")
            )
        parent.named.add(uid)
    return unit, Visit(frame, parent, name, uid, context, upstream, variables)


def _choose(variables: Mapping[str, Any], cases: Cases, context: Context) -> Unit:
    for case in cases.cases:
        try:
            if holds(case.when, variables):
                return case.unit
        except TemplateProblem as problem:
            raise TemplateFault(located(case.origin.at("when"), context, str(problem))) from None
    path = context.iteration.get("path", "") if context.iteration else ""
    raise TemplateFault(
        Fault(
            context.source[0],
            context.source[1] + path,
            f"no case of the visit matches this node (cases at {cases.cases[0].origin.file}: "
            f"{cases.cases[0].origin.pointer.rsplit('/', 1)[0]})",
        )
    )


def located(origin: Origin, context: Context, reason: str) -> Fault:
    """A fault at `origin`, naming the data node it was met at inside an iteration."""
    where = ""
    # Only an iteration has a node (a finally unit's variables outside one do not).
    if context.iteration is not None and "path" in context.iteration:
        file, prefix = context.source
        at = prefix + context.iteration.get("path", "") or "/"
        if len(at) > SHOWN_PATH:
            # A key may be a megabyte long: the message stays one readable line.
            at = f"{at[: SHOWN_PATH // 2]}...{at[-SHOWN_PATH // 4 :]} ({len(at):,} characters)"
        where = f" (for the node at {file}: {at})"
    return Fault(origin.file, origin.pointer, reason + where)


def named(parts: tuple[Done, ...] | list[Done]) -> list[tuple[str, str]]:
    """(subdirectory name, unit id) per part whose outputs are there (not a failed or skipped
    one); a name several parts share gets `.0`, `.1`... (counted over every part, so a part
    has the same name in META_UPSTREAM and in the template variable `upstream`, whichever
    others failed)."""
    return [(name, done.unit_id) for name, done in _names(parts) if done.ok]


def _names(parts: tuple[Done, ...] | list[Done]) -> list[tuple[str, Done]]:
    """Each part with its name, or `name.0`, `name.1`... for a name several parts share,
    passing over a number whose name a part already has (`v`, `v`, `v.1`: `v.0`, `v.2`,
    `v.1`)."""
    counts: dict[str, int] = {}
    for part in parts:
        counts[part.name] = counts.get(part.name, 0) + 1
    taken = {name for name, count in counts.items() if count == 1}
    seen: dict[str, int] = {}
    result = []
    for part in parts:
        if counts[part.name] == 1:
            result.append((part.name, part))
        else:
            index = seen.get(part.name, 0)
            while f"{part.name}.{index}" in taken:
                index += 1
            seen[part.name] = index + 1
            result.append((f"{part.name}.{index}", part))
    return result


def feeding(upstream: tuple[Done, ...]) -> list[Feeder]:
    """The units that feed a unit, as a task carries them to another engine."""
    return [
        (done.name, done.unit_id, done.state, done.result, done.shown, done.renewed)
        for done in upstream
    ]


def fed(feeders: Sequence[Sequence[Any]]) -> tuple[Done, ...]:
    """The `Done`s of the units a task says feed it (`feeding`'s inverse; a task written
    before feeders said whether they are `shown` has four fields, one written before they said
    whether they are `renewed` five)."""
    return tuple(
        Done(
            name,
            unit_id,
            cast(DoneState, state),
            result,
            shown=bool(flags[:1] and flags[0]),
            renewed=bool(flags[1:2] and flags[1]),
        )
        for name, unit_id, state, result, *flags in feeders
    )


def section_result(parts: list[Done]) -> Any:
    """A section's result: its one result unit's, or a mapping of its result units' results
    by their outputs' subdirectory names (skipped ones left out); None when none wrote one."""
    if len(parts) == 1:
        return parts[0].result
    if all(done.result is None for done in parts):
        return None
    return {name: done.result for name, done in _names(parts) if done.state != "skipped"}

"""The patterns, as frontiers: pure bookkeeping of what may start next and what it receives.

A frontier never runs anything. The engine asks it for the next `Ready` unit while a section is
below its `maxActive`, and tells it when one is `complete`. Frontiers pull data lazily
(a depth-first walk holds the siblings along the current path, never the whole tree), so the
graph is materialised only as the walk reaches it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Literal, Protocol

from meta.engine.records import UPSTREAM_FAILED
from meta.errors import Fault, InputFault
from meta.flow.checks import FINALLY, name_problem
from meta.flow.model import Cases, Over, Section, Unit
from meta.plan.entries import entry_needs
from meta.plan.plan import Plan, check_tree, fanned_out, resolve_kept
from meta.steps.walked import holds_nodes

DoneState = Literal["succeeded", "skipped", "failed", "cached", "cancelled"]
OK_STATES = frozenset({"succeeded", "cached"})
"""The states of a unit whose outputs are there to be read."""


@dataclass(frozen=True, slots=True)
class Done:
    """A finished unit, as its consumers see it: its name, whose outputs it stands for, how it
    ended and its result. A frontier passes a failed or skipped unit on like any other; the
    engine skips every unit a failure flows into (`onFailure: continue`), and runs those a unit
    skipped by its `when` flows into (they see its state, and decide)."""

    name: str
    unit_id: str
    """The unit whose outputs these are (a section stands for the part, or parts, it ends with)."""
    state: DoneState = "succeeded"
    """`succeeded`, `skipped`, `failed`, `cached` (its outputs reused, from an earlier
    session or run), or `cancelled` (stopped by a failure elsewhere: only finally units see
    it). A unit that did not succeed has no outputs and is left out of META_UPSTREAM."""
    result: Any = None
    """A step's JSON result (what it wrote to META_RESULT); a section's is its result unit's,
    or with several result units a mapping of their results by their outputs' subdirectory
    names; a flowRef's or a generate unit's is its flow's root's."""
    reason: str = ""
    """Why a skipped unit was: "condition" (its `when`), or UPSTREAM_FAILED."""
    shown: bool = False
    """Handed to a `finally` unit, which runs whatever became of it: what the finally unit
    holds sees its state, and is not skipped for it."""
    renewed: bool = field(default=False, compare=False)
    """Not as an earlier session of the run left it: it ran, came from the cache, or was
    skipped where it had finished before, in this session. A unit on record that reads it runs
    again: what it made, it made from the old outputs."""

    @property
    def ok(self) -> bool:
        return self.state in OK_STATES

    @property
    def failing(self) -> bool:
        """Whether it failed, or was skipped because something it reads failed: the units it
        flows into are skipped too (unless it is only `shown` to them)."""
        return not self.shown and (
            self.state == "failed" or (self.state == "skipped" and self.reason == UPSTREAM_FAILED)
        )


@dataclass(frozen=True, slots=True)
class Context:
    """What a unit runs with: the value META_INPUT holds, the iteration's template variables."""

    input: Any
    iteration: Mapping[str, Any] | None = None
    source: tuple[str, str] = ("", "")
    """Where the walked data is, to name it in errors: its file, and the JSON pointer of the
    input inside that file ("" for a data file, the value's pointer for an inline input)."""
    hidden: tuple[str, ...] = ()
    """Fields left out of META_INPUT (a tree node's children, which are walked on their own)."""


@dataclass(slots=True, eq=False)
class Ready:
    """A unit that may start now: which one, the instance, what it runs with and receives."""

    unit: Unit | Cases
    key: str
    """The id segment of this instance ('' outside iterations): an item index, a node path."""
    context: Context
    upstream: tuple[Done, ...]
    tag: Any = None


class Frontier(Protocol):
    def next(self) -> Ready | None: ...

    def complete(self, ready: Ready, done: Done) -> None: ...

    @property
    def finished(self) -> bool: ...

    def result(self) -> list[Done]:
        """The units whose outputs are the section's outputs."""
        ...


class SequenceFrontier:
    def __init__(self, units: Sequence[Unit], context: Context, upstream: tuple[Done, ...]) -> None:
        self._units = units
        self._context = context
        self._upstream = upstream
        self._position = 0
        self._waiting = False
        self._last: Done | None = None

    def next(self) -> Ready | None:
        if self._waiting or self._position >= len(self._units):
            return None
        self._waiting = True
        upstream = (self._last,) if self._last is not None else self._upstream
        return Ready(self._units[self._position], "", self._context, upstream)

    def complete(self, ready: Ready, done: Done) -> None:
        self._last = done
        self._position += 1
        self._waiting = False

    @property
    def finished(self) -> bool:
        return self._position >= len(self._units)

    def result(self) -> list[Done]:
        return [self._last] if self._last is not None else []


class _Waits:
    """The bookkeeping of a dag: which keys may start (all they wait for have finished), and
    what each finished as."""

    def __init__(self, needs: Mapping[str, Sequence[str]]) -> None:
        self.needs = needs
        self._waiting_on = {key: len(needed) for key, needed in needs.items()}
        self.dependents: dict[str, list[str]] = {key: [] for key in needs}
        for key, needed in needs.items():
            for other in needed:
                self.dependents[other].append(key)
        self._ready = deque(key for key, count in self._waiting_on.items() if count == 0)
        self.done: dict[str, Done] = {}

    def take(self) -> str | None:
        """A key that may start now, or None."""
        return self._ready.popleft() if self._ready else None

    def upstream(self, key: str, otherwise: tuple[Done, ...]) -> tuple[Done, ...]:
        """What `key` receives: the keys it waits for, or (waiting for none) `otherwise`."""
        return tuple(self.done[other] for other in self.needs[key]) or otherwise

    def finish(self, key: str, done: Done) -> None:
        self.done[key] = done
        for dependent in self.dependents[key]:
            self._waiting_on[dependent] -= 1
            if self._waiting_on[dependent] == 0:
                self._ready.append(dependent)

    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.needs)


class DagFrontier:
    """Units start once every unit they depend on has finished; without dependsOn, all at once."""

    def __init__(self, units: Sequence[Unit], context: Context, upstream: tuple[Done, ...]) -> None:
        self._units = {unit.name: unit for unit in units}
        self._context = context
        self._upstream = upstream
        self._waits = _Waits({unit.name: unit.depends_on for unit in units})

    def next(self) -> Ready | None:
        name = self._waits.take()
        if name is None:
            return None
        upstream = self._waits.upstream(name, self._upstream)
        return Ready(self._units[name], "", self._context, upstream, tag=name)

    def complete(self, ready: Ready, done: Done) -> None:
        self._waits.finish(ready.tag, done)

    @property
    def finished(self) -> bool:
        return self._waits.finished

    def result(self) -> list[Done]:
        waits = self._waits
        return [waits.done[name] for name, after in waits.dependents.items() if not after]


class ItemsFrontier:
    """One instance of `visit` per item of a collection, pulled as slots free up."""

    def __init__(
        self,
        visit: Unit | Cases,
        collection: Any,
        path: str,
        source: tuple[str, str],
        upstream: tuple[Done, ...],
    ) -> None:
        pairs = collection.items() if isinstance(collection, dict) else enumerate(collection)
        self._items: Iterator[tuple[int, tuple[Any, Any]]] = enumerate(pairs)
        self._visit = visit
        self._path = path
        self._source = source
        self._upstream = upstream
        self._active = 0
        self._exhausted = False
        self._done: dict[int, Done] = {}
        """Finished visits by item position: results keep item order, whatever the finish order."""

    def next(self) -> Ready | None:
        if self._exhausted:
            return None
        try:
            position, (index, item) = next(self._items)
        except StopIteration:
            self._exhausted = True
            return None
        self._active += 1
        ready = _item(self._visit, self._path, self._source, position, index, item, self._upstream)
        ready.tag = position
        return ready

    def complete(self, ready: Ready, done: Done) -> None:
        self._active -= 1
        self._done[ready.tag] = done

    @property
    def finished(self) -> bool:
        return self._exhausted and self._active == 0

    def result(self) -> list[Done]:
        return [self._done[position] for position in sorted(self._done)]


def _item(
    visit: Unit | Cases,
    path: str,
    source: tuple[str, str],
    position: int,
    index: str | int,
    item: Any,
    upstream: tuple[Done, ...],
) -> Ready:
    """The visit of one item of a fanout: an array's by its position, an object's entry by its
    key (its position in the id when the key is no plain name)."""
    where = _escaped(str(index))
    iteration = {
        "item": item,
        "node": item,
        "chunk": item,
        "index": index,
        "depth": 0,
        "path": f"{path}/{where}",
        "round": 0,
    }
    named = isinstance(index, str) and _segment(index)
    return Ready(
        visit, str(index if named else position), Context(item, iteration, source), upstream
    )


class EntriesDagFrontier:
    """A fanout over named entries that wait for each other (`over.dependsOn`): an entry's visit
    starts once the visits of the entries it names have finished, and receives their outputs
    (named by the entries' keys); one that waits for none gets the section's upstream. Its
    results: every visit's, in entry order."""

    def __init__(
        self,
        visit: Unit | Cases,
        entries: dict[str, Any],
        needs: Mapping[str, tuple[str, ...]],
        path: str,
        source: tuple[str, str],
        upstream: tuple[Done, ...],
    ) -> None:
        self._visit = visit
        self._entries = entries
        self._path = path
        self._source = source
        self._upstream = upstream
        self._waits = _Waits({key: needs.get(key, ()) for key in entries})
        self._keys = {key: position for position, key in enumerate(entries)}
        self._named = {key for key in entries if _names_entry(key)}
        """The keys that name their entries downstream."""

    def next(self) -> Ready | None:
        key = self._waits.take()
        if key is None:
            return None
        upstream = self._waits.upstream(key, self._upstream)
        entry = self._entries[key]
        ready = _item(self._visit, self._path, self._source, self._keys[key], key, entry, upstream)
        ready.tag = key
        return ready

    def complete(self, ready: Ready, done: Done) -> None:
        key = ready.tag
        if key in self._named:
            name = key
        else:
            # Its visit's name, never a key that names another entry (which keeps its name).
            name = done.name
            while name in self._named:
                name += "_"
        self._waits.finish(key, done if name == done.name else replace(done, name=name))

    @property
    def finished(self) -> bool:
        return self._waits.finished

    def result(self) -> list[Done]:
        done = self._waits.done
        return [done[key] for key in self._entries if key in done]


class GatherFrontier:
    """Runs an inner frontier to its end, then one `gather` unit that receives all its results."""

    def __init__(self, inner: Frontier, gather: Unit, context: Context) -> None:
        self._inner = inner
        self._gather = gather
        self._context = context
        self._started = False
        self._done: Done | None = None

    def next(self) -> Ready | None:
        ready = self._inner.next()
        if ready is not None or self._started or not self._inner.finished:
            return ready
        self._started = True
        return Ready(self._gather, "", self._context, tuple(self._inner.result()), tag=self)

    def complete(self, ready: Ready, done: Done) -> None:
        if ready.tag is self:
            self._done = done
        else:
            self._inner.complete(ready, done)

    @property
    def finished(self) -> bool:
        return self._done is not None

    def result(self) -> list[Done]:
        return [self._done] if self._done is not None else []


def _names_entry(key: str) -> bool:
    """Whether an entry's outputs go by its key downstream: a key that could be a unit's name
    (a folder name, and `upstream.KEY` in templates; `finally` too)."""
    return key == FINALLY or name_problem(key) is None


_KEY_NAME = re.compile(r"(?=.*[A-Za-z_-])[A-Za-z0-9_-]{1,63}")
"""An entry's key that may name it: a name without dots (which separate the levels) that is not
a number (which positions are)."""


def _segment(key: str) -> bool:
    """Whether an entry's key stands in its node's id: a name, and not the id segment of finally
    units (a member keyed so is still named by its key downstream)."""
    return key != FINALLY and _KEY_NAME.fullmatch(key) is not None


def _escaped(key: str) -> str:
    """`key` as one JSON pointer token."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass(slots=True, eq=False)
class _Node:
    """One tree node on the walk: the data, where it is, and (post-order) its children's results."""

    data: dict[str, Any]
    key: str
    path: str
    depth: int
    index: int
    parent: _Node | None
    upstream: tuple[Done, ...] = ()
    waiting: int = 0
    results: list[Done | None] | None = None
    name: str | None = None
    """The entry's key, for a node held in a map of named entries (`over.entries`)."""


class _TreeWalk:
    def __init__(
        self,
        visit: Unit | Cases,
        root: Any,
        over: Over,
        source: tuple[str, str],
        upstream: tuple[Done, ...],
        path: str,
    ) -> None:
        self._visit = visit
        self._children_fields = over.children
        self._entries_fields = over.entries
        self._fields = over.fields
        self._keep_misfits = over.keep_misfits
        self._source = source
        self._upstream = upstream
        self._root = _Node(root, "root", path, 0, 0, None, upstream)
        self._root_done: Done | None = None
        self._active = 0

    def _walked(self, data: Any) -> tuple[str, ...]:
        """The fields of a node the walk takes children from (they are left out of its
        META_INPUT): all of them, unless misfits are kept (then those holding nodes)."""
        if not self._keep_misfits:
            return self._fields
        if not isinstance(data, dict):
            return ()
        return tuple(
            name
            for name in self._fields
            if name in data and holds_nodes(data[name], named=name in self._entries_fields)
        )

    def _children(self, node: _Node) -> list[_Node]:
        found: list[_Node] = []
        walked = self._walked(node.data) if self._keep_misfits else None
        for name in self._children_fields:
            value = node.data.get(name) if walked is None or name in walked else None
            if value is None:
                continue
            if isinstance(value, dict):
                found.append(_Node(value, "", f"{node.path}/{name}", node.depth + 1, 0, node))
            else:
                found.extend(
                    _Node(child, "", f"{node.path}/{name}/{i}", node.depth + 1, 0, node)
                    for i, child in enumerate(value)
                )
        for name in self._entries_fields:
            entries = (node.data.get(name) if walked is None or name in walked else None) or {}
            found.extend(
                _Node(
                    entry,
                    "",
                    f"{node.path}/{name}/{_escaped(key)}",
                    node.depth + 1,
                    0,
                    node,
                    name=key,
                )
                for key, entry in entries.items()
            )
        taken: set[str] = set()
        for index, child in enumerate(found):
            child.index = index
            segment = str(index)
            if child.name is not None and _segment(child.name) and child.name not in taken:
                segment = child.name
            taken.add(segment)
            child.key = f"{node.key}.{segment}"
        return found

    def _work(self, node: _Node) -> Ready:
        self._active += 1
        iteration = {
            "node": node.data,
            "item": node.data,
            "chunk": node.data,
            "index": node.index if node.name is None else node.name,
            "depth": node.depth,
            "path": node.path,
            "round": 0,
        }
        context = Context(node.data, iteration, self._source, self._walked(node.data))
        return Ready(self._visit, node.key, context, node.upstream, tag=node)

    def _finish(self, node: _Node, done: Done) -> None:
        self._active -= 1
        if node.parent is None:
            self._root_done = done

    def result(self) -> list[Done]:
        return [self._root_done] if self._root_done is not None else []


class DfsPreFrontier(_TreeWalk):
    """Depth first, parent before children; a parent's output flows down to each child."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._stack = [self._root]

    def next(self) -> Ready | None:
        return self._work(self._stack.pop()) if self._stack else None

    def complete(self, ready: Ready, done: Done) -> None:
        node: _Node = ready.tag
        self._finish(node, done)
        children = self._children(node)
        for child in children:
            child.upstream = (done,)
        self._stack.extend(reversed(children))

    @property
    def finished(self) -> bool:
        return not self._stack and self._active == 0


class DfsPostFrontier(_TreeWalk):
    """Depth first, children before parent; the children's outputs flow up into the parent."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._stack = [self._root]
        self._ready: list[_Node] = []

    def next(self) -> Ready | None:
        if self._ready:
            return self._work(self._ready.pop())
        while self._stack:
            node = self._stack.pop()
            children = self._children(node)
            if not children:
                node.upstream = self._upstream
                return self._work(node)
            node.waiting = len(children)
            node.results = [None] * len(children)
            self._stack.extend(reversed(children))
        return None

    def complete(self, ready: Ready, done: Done) -> None:
        node: _Node = ready.tag
        self._finish(node, done)
        parent = node.parent
        if parent is None or parent.results is None:
            return
        parent.results[node.index] = done
        parent.waiting -= 1
        if parent.waiting == 0:
            parent.upstream = tuple(r for r in parent.results if r is not None)
            parent.results = None
            self._ready.append(parent)

    @property
    def finished(self) -> bool:
        return not self._stack and not self._ready and self._active == 0


class BfsPreFrontier(_TreeWalk):
    """Level by level from the root: a level starts when the one above has finished."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._level = [self._root]
        self._position = 0
        self._below: dict[int, list[_Node]] = {}

    def next(self) -> Ready | None:
        if self._position >= len(self._level) and self._active == 0 and self._below:
            self._level = [child for i in sorted(self._below) for child in self._below[i]]
            self._below = {}
            self._position = 0
        if self._position >= len(self._level):
            return None
        node = self._level[self._position]
        ready = self._work(node)
        ready.tag = (node, self._position)
        self._position += 1
        return ready

    def complete(self, ready: Ready, done: Done) -> None:
        node, position = ready.tag
        self._finish(node, done)
        children = self._children(node)
        for child in children:
            child.upstream = (done,)
        if children:
            self._below[position] = children

    @property
    def finished(self) -> bool:
        return self._position >= len(self._level) and self._active == 0 and not self._below


class BfsPostFrontier(_TreeWalk):
    """Level by level from the deepest: a parent runs after its whole level below has finished."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        levels = [[self._root]]
        while levels[-1]:
            below: list[_Node] = []
            for node in levels[-1]:
                children = self._children(node)
                node.results = [None] * len(children) if children else None
                below.extend(children)
            levels.append(below)
        levels.pop()
        self._levels = levels
        self._position = 0

    def next(self) -> Ready | None:
        level = self._levels[-1] if self._levels else []
        if self._position >= len(level) and self._active == 0 and len(self._levels) > 1:
            self._levels.pop()
            level = self._levels[-1]
            self._position = 0
        if self._position >= len(level):
            return None
        node = level[self._position]
        self._position += 1
        if node.results is None:
            node.upstream = self._upstream
        else:
            node.upstream = tuple(r for r in node.results if r is not None)
            node.results = None
        return self._work(node)

    def complete(self, ready: Ready, done: Done) -> None:
        node: _Node = ready.tag
        self._finish(node, done)
        if node.parent is not None and node.parent.results is not None:
            node.parent.results[node.index] = done

    @property
    def finished(self) -> bool:
        return (
            len(self._levels) <= 1 and self._active == 0 and self._position >= len(self._levels[-1])
        )


@dataclass(slots=True, eq=False)
class _Chunk:
    number: int
    records: list[Any]
    position: int = 0
    busy: bool = False
    last: Done | None = None


class CycleFrontier:
    """A circular queue: each chunk of a stream goes round the ring of units, `rounds` times.

    Each ring member works on one chunk at a time, so at most one unit per member is live; older
    chunks go first, and a new chunk is read from the stream only when the first member is free.
    """

    def __init__(
        self,
        ring: Sequence[Unit],
        rounds: int,
        records: Iterator[Any],
        over: Over,
        source: tuple[str, str],
        upstream: tuple[Done, ...],
    ) -> None:
        self._ring = ring
        self._steps = rounds * len(ring)
        self._records = records
        self._chunk_size = over.chunk
        self._path = over.path
        self._source = source
        self._upstream = upstream
        self._busy = [False] * len(ring)
        self._flight: list[_Chunk] = []
        self._count = 0
        self._exhausted = False
        self._done: list[Done] = []

    def next(self) -> Ready | None:
        for chunk in self._flight:
            if not chunk.busy and not self._busy[chunk.position % len(self._ring)]:
                return self._work(chunk)
        if self._busy[0] or self._exhausted or len(self._flight) >= len(self._ring):
            return None
        records = list(islice(self._records, self._chunk_size))
        if not records:
            self._exhausted = True
            return None
        chunk = _Chunk(self._count, records)
        self._count += 1
        self._flight.append(chunk)
        return self._work(chunk)

    def _work(self, chunk: _Chunk) -> Ready:
        member = chunk.position % len(self._ring)
        round_ = chunk.position // len(self._ring)
        chunk.busy = True
        self._busy[member] = True
        iteration = {
            "chunk": chunk.records,
            "node": chunk.records,
            "item": chunk.records,
            "index": chunk.number,
            "round": round_,
            "depth": 0,
            "path": self._path,
        }
        upstream = (chunk.last,) if chunk.last is not None else self._upstream
        return Ready(
            self._ring[member],
            f"chunk{chunk.number}.round{round_}",
            Context(chunk.records, iteration, self._source),
            upstream,
            tag=chunk,
        )

    def complete(self, ready: Ready, done: Done) -> None:
        chunk: _Chunk = ready.tag
        self._busy[chunk.position % len(self._ring)] = False
        chunk.busy = False
        chunk.last = done
        chunk.position += 1
        if chunk.position == self._steps:
            self._flight.remove(chunk)
            self._done.append(done)

    @property
    def finished(self) -> bool:
        return self._exhausted and not self._flight

    def result(self) -> list[Done]:
        return self._done


def tree_frontier(
    section: Section, root: Any, source: tuple[str, str], upstream: tuple[Done, ...], path: str
) -> Frontier:
    assert section.visit is not None and section.over is not None
    kinds: dict[tuple[str, str], type[_TreeWalk]] = {
        ("dfs", "pre"): DfsPreFrontier,
        ("dfs", "post"): DfsPostFrontier,
        ("bfs", "pre"): BfsPreFrontier,
        ("bfs", "post"): BfsPostFrontier,
    }
    walk: Any = kinds[(section.pattern, section.order)](
        section.visit, root, section.over, source, upstream, path
    )
    frontier: Frontier = walk
    return frontier


def frontier_for(
    plan: Plan, section: Section, context: Context, upstream: tuple[Done, ...]
) -> Frontier:
    """The frontier of `section`'s pattern, over the data its plan holds (or, for a section
    over its visit's node, the data of `context`)."""
    over = section.over
    frontier: Frontier
    if section.pattern == "sequence":
        return SequenceFrontier(section.units, context, upstream)
    if section.pattern in ("dag", "fanin"):
        frontier = DagFrontier(section.units, context, upstream)
    elif section.pattern == "cycle":
        assert over is not None and over.input is not None
        records = plan.records(over)
        frontier = CycleFrontier(
            section.ring, section.rounds, records, over, plan.located(over.input), upstream
        )
    else:
        assert over is not None and section.visit is not None
        value, source, path = _walked(plan, section, over, context, upstream)
        if section.pattern == "fanout" and over.keep_misfits:
            value = fanned_out(value, over, source[0], source[1] + path, section.name)
        elif over.input is None and over.result is None:
            # Data met only now: checked as the plan checks its inputs.
            check = check_tree if section.pattern != "fanout" else fanned_out
            check(value, over, source[0], source[1] + path, section.name)
        if section.pattern != "fanout":
            frontier = tree_frontier(section, value, source, upstream, path)
        elif over.depends_on is None:
            frontier = ItemsFrontier(section.visit, value, path, source, upstream)
        else:
            needs = entry_needs(
                value, over.depends_on, source[0], source[1] + path, keep=over.keep_misfits
            )
            frontier = EntriesDagFrontier(section.visit, value, needs, path, source, upstream)
    if section.gather is not None:
        frontier = GatherFrontier(frontier, section.gather, context)
    return frontier


def _walked(
    plan: Plan, section: Section, over: Over, context: Context, upstream: tuple[Done, ...]
) -> tuple[Any, tuple[str, str], str]:
    """What a data-driven section walks: the value, where its data is (file, pointer of the
    input in it), and its JSON pointer in that data. With `over.result`, an upstream unit's
    result; without `over.input`, the enclosing visit's node, at `over.path` below it."""
    if over.result is not None:
        value, source = _result_collection(section, over, upstream)
        return value, source, over.path
    if over.input is not None:
        return plan.over(over), plan.located(over.input), over.path
    base = context.iteration.get("path", "") if context.iteration else ""
    file, prefix = context.source
    value = resolve_kept(over, context.input, over.path, file, prefix + base)
    return value, context.source, base + over.path


def _result_collection(
    section: Section, over: Over, upstream: tuple[Done, ...]
) -> tuple[Any, tuple[str, str]]:
    """What a fanout over an upstream unit's result walks, and where that is for faults (a
    skipped unit's result is an empty collection)."""
    where = section.origin.at("over", "result")
    producers = {done.name: done for done in upstream}
    producer = producers.get(over.result or "")
    if producer is None:
        feeding = ", ".join(sorted(producers)) or "none"
        raise InputFault(
            Fault(
                where.file,
                where.pointer,
                f"'{over.result}' is not among the units that feed '{section.name}' "
                f"(those are: {feeding})",
            )
        )
    if producer.state == "skipped":
        return [], (where.file, where.pointer)
    source = (f"the result of {producer.unit_id}", "")
    value = resolve_kept(over, producer.result, over.path, *source)
    if over.keep_misfits:
        return fanned_out(value, over, *source, section.name), source
    if not isinstance(value, list | dict):
        raise InputFault(
            Fault(
                *source[:1],
                over.path or "/",
                f"section '{section.name}' needs an array or an object to fan out over, "
                f"got {type(value).__name__ if value is not None else 'no result'}",
            )
        )
    return value, source

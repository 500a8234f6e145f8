"""The dependencies among named entries that a fanout runs as a dag (`over.dependsOn`): each
entry names the entries it waits for in one of its fields, as a CI workflow's jobs do in
`needs`. Read from the data, before the run for a data file and when the section starts for
data made upstream; a name that is no entry, or a cycle, is a fault in the data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meta.errors import Fault, InputFault, pointer


def entry_needs(
    entries: Mapping[str, Any], field: str, file: str, where: str, *, keep: bool = False
) -> dict[str, tuple[str, ...]]:
    """Entry -> the entries it waits for (its `field`: a name or a list of names), in the
    order written; `where` is the pointer of `entries` in `file`. `keep` (a fanout keeping
    misfits): a field that is neither waits for nothing (the entry's own check reports it)."""
    needs: dict[str, tuple[str, ...]] = {}
    faults: list[Fault] = []
    for key, entry in entries.items():
        named = entry.get(field) if isinstance(entry, dict) else None
        listed = [named] if isinstance(named, str) else named
        if listed is None:
            needs[key] = ()
            continue
        at = where + pointer([key, field])
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            if keep:
                needs[key] = ()
            else:
                faults.append(Fault(file, at, f"'{field}' must name entries: a name or a list"))
            continue
        for i, name in enumerate(listed):
            if name not in entries:
                # A name given alone is at the field itself: it has no /0.
                place = at if isinstance(named, str) else f"{at}/{i}"
                faults.append(Fault(file, place, f"'{name}' names no entry"))
        needs[key] = tuple(dict.fromkeys(n for n in listed if n in entries))
    if faults:
        raise InputFault(faults)
    cycle = _cycle(needs)
    if cycle:
        raise InputFault(
            Fault(
                file,
                where + pointer([cycle[0], field]),
                f"entries wait for each other in a cycle: {' -> '.join(cycle)}",
            )
        )
    return needs


def _cycle(needs: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A cycle of waits (its first entry repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in needs:
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            key, position = stack.pop()
            if position == 0:
                state[key] = 1
                path.append(key)
            waits = needs[key]
            if position < len(waits):
                stack.append((key, position + 1))
                following = waits[position]
                if state.get(following) == 1:
                    return [*path[path.index(following) :], following]
                if following not in state:
                    stack.append((following, 0))
            else:
                state[key] = 2
                path.pop()
    return []

"""A flow's structure as the page draws it, and where each unit instance belongs in it.

The structure is `meta graph`'s (`meta.plan.graph.flow_graph`): a visit appears once, its
sections are clusters. Unit ids are paths that hold the structure's names with instance keys
between them (`tree-sum/walk/root.0.1/sum`: section `tree-sum/walk`, node `root.0.1`, step
`sum`), so an instance is placed by walking its id through the names the structure knows and
skipping the rest. Generated flows exist only at run time: their units land on the `generate`
node that made them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from meta.flow.model import Cases, FlowRef, Generate, Section, Step, Unit, max_active
from meta.plan.graph import flow_graph
from meta.plan.plan import Plan


@dataclass(frozen=True)
class Place:
    """Where a unit instance belongs."""

    group: str
    """The structure's cluster (section, flowRef) or generate node holding it."""
    node: str | None
    """The step node it is an instance of, when that is known."""
    instance: str
    """The id of the section instance it runs in (its id up to the group's last name)."""
    levels: tuple[tuple[str, str], ...] = ()
    """(group, id of its instance) for every group it is in, outermost first."""


@dataclass
class Structure:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    """Cytoscape elements' data: id, parent, kind, label and, for sections, scope, pattern
    and maxActive."""
    edges: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, str | None] = field(default_factory=dict)
    """Every group and the group it is in."""
    steps: dict[str, list[str]] = field(default_factory=dict)
    """Each group's step nodes."""
    inner: dict[str, list[str]] = field(default_factory=dict)
    """Each group's groups ("": the outermost)."""
    # Placing is done for every unit of runs of 100,000: the walks by parent id and the step
    # each name fits are remembered (siblings share a parent; names repeat across instances).
    _placed: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _named: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def place(self, unit_id: str) -> Place:
        parent, _, name = unit_id.rpartition("/")
        levels = self._placed.get(parent)
        if levels is None:
            levels = self._placed[parent] = self._walk(parent.split("/"))
        if not levels:
            # No structure (the flow file is gone) or a unit outside it: its parent id.
            return Place(parent, None, parent, ((parent, parent),))
        path, instance = levels[-1]
        key = (path, name)
        if key not in self._named:
            self._named[key] = self._fit(path, name, self.steps.get(path, []))
        return Place(path, self._named[key], instance, levels)

    def _walk(self, parts: list[str]) -> tuple[tuple[str, str], ...]:
        """The groups a unit whose parent id is `parts` is in, outermost first, each with the
        id of its instance."""
        path, levels = parts[0], []
        for index, part in enumerate(parts[1:], start=1):
            inner = self._fit(path, part, self.inner.get(path if index > 1 else "", []))
            if inner is not None:
                path = inner
                levels.append((path, "/".join(parts[: index + 1])))
        return tuple(levels)

    @staticmethod
    def _fit(group: str, name: str, candidates: list[str]) -> str | None:
        """The member of `group` that `name` is an instance of: the one of that name, or the
        one templated member whose literal start and end fit it (`line-{{ item.id }}` for
        `line-A1`)."""
        named = f"{group}/{name}"
        if named in candidates:
            return named
        fitting = []
        for step in candidates:
            template = step[len(group) + 1 :]
            if "{{" in template:
                head, tail = template.split("{{", 1)[0], template.rsplit("}}", 1)[-1]
                if name.startswith(head) and name.endswith(tail):
                    fitting.append(step)
        return fitting[0] if len(fitting) == 1 else None

    def ancestors(self, group: str) -> Iterator[str]:
        """The group and every group around it, innermost first."""
        current: str | None = group
        while current is not None:
            yield current
            current = self.groups.get(current)


def structure(plan: Plan) -> Structure:
    built = flow_graph(plan)
    sections: dict[str, Mapping[str, Any]] = {}
    _sections(plan, plan.flow.root, plan.flow.name, sections)
    result = Structure()
    # Clusters first, each after the one around it (flow_graph makes them in that order):
    # cytoscape needs a parent before its children.
    for cluster in built.clusters.values():
        data = {"id": cluster.id, "parent": cluster.parent, "label": cluster.id.rsplit("/")[-1]}
        data.update(sections.get(cluster.id, {"kind": "flowRef"}))
        result.nodes.append(data)
        result.groups[cluster.id] = cluster.parent
        # The outermost under "": a unit's id starts with the flow's name, which is no group.
        result.inner.setdefault(cluster.parent or "", []).append(cluster.id)
    parent_of = {m: c.id for c in built.clusters.values() for m in c.members}
    for node_id, attributes in built.graph.nodes(data=True):
        shape = attributes["shape"]
        kind = {"box": "step", "hexagon": "generate", "diamond": "choice"}[shape]
        parent = parent_of.get(node_id)
        result.nodes.append(
            {"id": node_id, "parent": parent, "kind": kind, "label": attributes["label"]}
        )
        if kind == "step" and parent is not None:
            result.steps.setdefault(parent, []).append(node_id)
        if kind == "generate":
            result.groups[node_id] = parent
            if parent is not None:
                result.inner.setdefault(parent, []).append(node_id)
    result.edges = [
        {"id": f"e{i}", "source": a, "target": b, "label": data.get("label", "")}
        for i, (a, b, data) in enumerate(built.graph.edges(data=True))
    ]
    return result


def _sections(plan: Plan, unit: Unit, prefix: str, found: dict[str, Mapping[str, Any]]) -> None:
    """The attributes of every section, by the id `flow_graph` gives its cluster."""
    node_id = f"{prefix}/{unit.name}"
    if isinstance(unit, Step | Generate):
        return
    if isinstance(unit, FlowRef):
        sub = plan.subplan(unit)
        _sections(sub, sub.flow.root, node_id, found)
        return
    found[node_id] = {
        "kind": "section",
        "scope": unit.scope,
        "pattern": unit.pattern,
        "maxActive": max_active(unit),
    }
    children: list[Unit] = [*unit.units, *unit.ring]
    if isinstance(unit.visit, Cases):
        children.extend(case.unit for case in unit.visit.cases)
    elif isinstance(unit.visit, Section | Step | FlowRef | Generate):
        children.append(unit.visit)
    if unit.gather is not None:
        children.append(unit.gather)
    for child in children:
        _sections(plan, child, node_id, found)

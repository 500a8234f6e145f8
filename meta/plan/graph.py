"""The flow as a picture source (`meta graph`): Mermaid or Graphviz DOT.

The graph is the flow's structure, not its expansion: a visit appears once, marked as run per
item or node, since the expanded graph exists only while the flow runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import networkx as nx

from meta.flow.model import Cases, FlowRef, Generate, Section, Step, Unit, max_active
from meta.plan.describe import generated_from
from meta.plan.plan import Plan


@dataclass
class Cluster:
    id: str
    label: str
    parent: str | None
    members: list[str] = field(default_factory=list)


@dataclass
class FlowGraph:
    graph: nx.DiGraph
    clusters: dict[str, Cluster]


def flow_graph(plan: Plan) -> FlowGraph:
    built = FlowGraph(nx.DiGraph(), {})
    flow = plan.flow
    _, exits = _add(built, plan, flow.root, flow.name, None)
    _finally(built, plan, flow.final, f"{flow.name}/finally", None, exits)
    return built


def _finally(
    built: FlowGraph,
    plan: Plan,
    units: tuple[Unit, ...],
    prefix: str,
    cluster: str | None,
    exits: list[str],
) -> list[str]:
    """Chain `finally` units in order after `exits` (an edge labelled as what it is: they run
    whatever happened); the exits of the last one."""
    first = True
    for unit in units:
        entries, after = _add(built, plan, unit, prefix, cluster)
        for x in exits:
            for y in entries:
                built.graph.add_edge(x, y, **({"label": "finally"} if first else {}))
        exits, first = after, False
    return exits


def _node(built: FlowGraph, node_id: str, label: str, shape: str, cluster: str | None) -> None:
    built.graph.add_node(node_id, label=label, shape=shape)
    if cluster is not None:
        built.clusters[cluster].members.append(node_id)


def _add(
    built: FlowGraph, plan: Plan, unit: Unit, prefix: str, cluster: str | None
) -> tuple[list[str], list[str]]:
    """Add a unit; return its entry and exit node ids (for edges from and to its siblings)."""
    node_id = f"{prefix}/{unit.name}"
    if isinstance(unit, Step):
        _node(built, node_id, unit.name, "box", cluster)
        return [node_id], [node_id]
    if isinstance(unit, Generate):
        _node(
            built,
            node_id,
            f"generate {unit.name}: from {generated_from(unit.description)}",
            "hexagon",
            cluster,
        )
        return [node_id], [node_id]
    if isinstance(unit, FlowRef):
        sub = plan.subplan(unit)
        built.clusters[node_id] = Cluster(
            node_id, f"flowRef {unit.name}: flow {sub.flow.name}", cluster
        )
        return _add(built, sub, sub.flow.root, node_id, node_id)
    entries, exits = _section(built, plan, unit, node_id, cluster)
    return entries, _finally(built, plan, unit.final, f"{node_id}/finally", node_id, exits)


def _section(
    built: FlowGraph, plan: Plan, section: Section, node_id: str, cluster: str | None
) -> tuple[list[str], list[str]]:
    label = f"{section.name}: {section.scope} {section.pattern}, maxActive {max_active(section)}"
    if section.pattern in ("dfs", "bfs"):
        label += f", {section.order}-order"
    built.clusters[node_id] = Cluster(node_id, label, cluster)
    edges = built.graph.add_edge
    if section.pattern in ("sequence", "dag", "fanin"):
        ends = {unit.name: _add(built, plan, unit, node_id, node_id) for unit in section.units}
        entries: list[str] = []
        exits: list[str] = []
        names = [unit.name for unit in section.units]
        for i, unit in enumerate(section.units):
            before = (
                unit.depends_on
                if section.pattern == "dag"
                else names[i - 1 : i]
                if section.pattern == "sequence"
                else ()
            )
            for dependency in before:
                for a in ends[dependency][1]:
                    for b in ends[unit.name][0]:
                        edges(a, b)
            if not before:
                entries.extend(ends[unit.name][0])
        followed = {d for unit in section.units for d in unit.depends_on}
        if section.pattern == "sequence":
            followed = set(names[:-1])
        for name in names:
            if name not in followed:
                exits.extend(ends[name][1])
        return _gathered(built, plan, section, node_id, entries, exits)
    if section.pattern == "cycle":
        members = [_add(built, plan, member, node_id, node_id) for member in section.ring]
        for (_, exits_before), (entries_after, _) in pairwise(members):
            for x in exits_before:
                for y in entries_after:
                    edges(x, y)
        if section.rounds > 1:
            for x in members[-1][1]:
                for y in members[0][0]:
                    edges(x, y, label=f"next round ({section.rounds} in all)")
        return members[0][0], members[-1][1]
    assert section.visit is not None
    per = "per item" if section.pattern == "fanout" else "per node"
    if isinstance(section.visit, Cases):
        choice = f"{node_id}/visit"
        _node(built, choice, f"visit {per}: first case that holds", "diamond", node_id)
        exits = []
        for case in section.visit.cases:
            entry, out = _add(built, plan, case.unit, node_id, node_id)
            for y in entry:
                edges(choice, y, label=case.when)
            exits.extend(out)
        entries = [choice]
    else:
        entries, exits = _add(built, plan, section.visit, node_id, node_id)
        for x in entries:
            built.graph.nodes[x]["label"] += f" ({per})"
    if section.pattern in ("dfs", "bfs"):
        flows = "to each child" if section.order == "pre" else "to the parent"
        for x in exits:
            for y in entries:
                edges(x, y, label=flows)
    return _gathered(built, plan, section, node_id, entries, exits)


def _gathered(
    built: FlowGraph,
    plan: Plan,
    section: Section,
    node_id: str,
    entries: list[str],
    exits: list[str],
) -> tuple[list[str], list[str]]:
    if section.gather is None:
        return entries, exits
    gather_entry, gather_exit = _add(built, plan, section.gather, node_id, node_id)
    for x in exits:
        for y in gather_entry:
            built.graph.add_edge(x, y)
    return entries, gather_exit


def _ids(built: FlowGraph) -> dict[str, str]:
    names = [*built.graph.nodes, *built.clusters]
    return {name: f"n{i}" for i, name in enumerate(names)}


def _quote(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(built: FlowGraph) -> str:
    ids = _ids(built)
    lines = ["flowchart TD"]
    shapes = {"box": ('["', '"]'), "diamond": ('{"', '"}'), "hexagon": ('{{"', '"}}')}

    def emit(cluster: str | None, depth: int) -> None:
        pad = "  " * depth
        members = (
            built.clusters[cluster].members
            if cluster
            else [
                n
                for n in built.graph.nodes
                if not any(n in c.members for c in built.clusters.values())
            ]
        )
        for node in members:
            left, right = shapes[built.graph.nodes[node]["shape"]]
            lines.append(f"{pad}{ids[node]}{left}{_quote(built.graph.nodes[node]['label'])}{right}")
        for child in (c for c in built.clusters.values() if c.parent == cluster):
            lines.append(f'{pad}subgraph {ids[child.id]}["{_quote(child.label)}"]')
            emit(child.id, depth + 1)
            lines.append(f"{pad}end")

    emit(None, 1)
    for a, b, data in built.graph.edges(data=True):
        label = f'|"{_quote(data["label"])}"|' if "label" in data else ""
        lines.append(f"  {ids[a]} -->{label} {ids[b]}")
    return "\n".join(lines) + "\n"


def to_dot(built: FlowGraph) -> str:
    ids = _ids(built)
    lines = ["digraph flow {", "  compound=true;", "  node [fontname=Helvetica];"]

    def emit(cluster: str | None, depth: int) -> None:
        pad = "  " * depth
        members = (
            built.clusters[cluster].members
            if cluster
            else [
                n
                for n in built.graph.nodes
                if not any(n in c.members for c in built.clusters.values())
            ]
        )
        for node in members:
            attrs = built.graph.nodes[node]
            lines.append(
                f'{pad}{ids[node]} [label="{_quote(attrs["label"])}", shape={attrs["shape"]}];'
            )
        for child in (c for c in built.clusters.values() if c.parent == cluster):
            lines.append(f"{pad}subgraph cluster_{ids[child.id]} {{")
            lines.append(f'{pad}  label="{_quote(child.label)}";')
            emit(child.id, depth + 1)
            lines.append(f"{pad}}}")

    emit(None, 1)
    for a, b, data in built.graph.edges(data=True):
        label = f' [label="{_quote(data["label"])}"]' if "label" in data else ""
        lines.append(f"  {ids[a]} -> {ids[b]}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"

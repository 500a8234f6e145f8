"""meta.plan.describe and meta.plan.graph: the plan in words and as Mermaid / DOT source."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pydot
import pytest

from meta.flow.files import display_path
from meta.plan.describe import describe
from meta.plan.graph import flow_graph, to_dot, to_mermaid
from meta.plan.plan import Plan, compile_plan

CHILD = """
inputs: {n: {value: 1}}
root:
  name: inner
  scope: micro
  pattern: sequence
  units:
    - {name: load, run: {command: [cat, x]}}
    - {name: use, run: {command: [wc], image: "busybox:1"}}
"""

MAIN = """
inputs: {xs: {value: [1, 2]}, tree: {path: data/tree.json}, s: {path: data/s.jsonl}}
defaults: {retries: 2, timeoutSeconds: 30}
parallelism: 3
root:
  name: top
  scope: macro
  pattern: dag
  maxActive: 2
  units:
    - {name: prep, run: {command: [echo, "{{ inputs.xs }}"]}}
    - name: fan
      dependsOn: [prep]
      scope: macro
      pattern: fanout
      over: {input: xs}
      visit: {name: "sq-{{ index }}", run: {command: [echo, "{{ item }}"]}}
      gather: {name: total, run: {command: ["true"]}}
    - name: walk
      dependsOn: [prep]
      scope: micro
      pattern: dfs
      order: post
      over: {input: tree, children: kids}
      visit:
        cases:
          - when: 'node.kind == "root"'
            unit: {name: r, run: {command: ["true"]}}
          - when: "depth > 0"
            unit: {name: l, run: {command: ["true"]}}
    - name: spin
      scope: micro
      pattern: cycle
      rounds: 2
      over: {input: s, chunk: 1}
      ring: [{name: r1, run: {command: ["true"]}}, {name: r2, run: {command: ["true"]}}]
    - name: side
      scope: macro
      pattern: fanin
      units: [{name: f1, run: {command: ["true"]}}, {name: f2, run: {command: ["true"]}}]
      gather: {name: fg, run: {command: ["true"]}}
    - name: sub
      dependsOn: [fan, walk, spin]
      flowRef: {path: child.flow.yaml, inputs: {n: {value: 2}}}
    - name: bf
      scope: macro
      pattern: bfs
      maxActive: 3
      over: {input: tree, children: [kids]}
      visit: {name: b, run: {command: ["true"]}}
"""

SECTIONS = {  # name -> (scope, pattern, maxActive)
    "top": ("macro", "dag", 2),
    "fan": ("macro", "fanout", 4),
    "walk": ("micro", "dfs", 1),
    "spin": ("micro", "cycle", 2),
    "side": ("macro", "fanin", 4),
    "inner": ("micro", "sequence", 1),
    "bf": ("macro", "bfs", 3),
}
STEPS = ["prep", "sq-{{ index }}", "total", "r", "l", "r1", "r2", "f1", "f2", "fg", "load", "use"]


@pytest.fixture
def plan(write: Callable[[str, str], Path], write_flow: Callable[..., Path]) -> Plan:
    write("data/tree.json", '{"kind": "root", "kids": [{"kind": "leaf"}]}')
    write("data/s.jsonl", '{"a": 1}\n')
    write_flow("child.flow.yaml", CHILD, "child")
    return compile_plan(write_flow("main.flow.yaml", MAIN, "composite"))


def test_describe(plan: Plan) -> None:
    lines = describe(plan)
    tree = display_path(plan.inputs["tree"].path)  # type: ignore[union-attr]
    assert lines[:6] == [
        f"flow composite ({display_path(plan.flow.source)})",
        "  input xs: [1, 2]",
        f"  input tree: file {tree}",
        f"  input s: file {display_path(plan.inputs['s'].path)}",  # type: ignore[union-attr]
        "  defaults: 2 retries, timeout 30 s",
        "  parallelism: at most 3 units of the run at once",
    ]
    text = "\n".join(lines)
    for name, (scope, pattern, bound) in SECTIONS.items():
        (line,) = [x for x in lines if f"{scope} section {name} [{pattern}]: " in x]
        assert f"at most {bound} live" in line
        assert ("one pod, units share a RAM scratch" in line) == (scope == "micro")
    for step in STEPS:
        assert f"step {step}: " in text
    assert "    step prep: echo '{{ inputs.xs }}'" in lines
    assert "      visit per item: step sq-{{ index }}: echo '{{ item }}'" in lines
    assert "      gather: step total: true" in lines
    assert "      ring 2: step r2: true" in lines
    assert "      visit per node, the first case that holds:" in lines
    assert '        when node.kind == "root": step r: true' in lines
    assert "        step use: wc in image busybox:1" in lines
    assert "      visit per node: step b: true" in lines


def test_describe_says_what_each_pattern_does(plan: Plan) -> None:
    lines = describe(plan)

    def of(name: str) -> str:
        (line,) = [x for x in lines if f" section {name} [" in x]
        return line

    assert "runs its units as their dependencies finish" in of("top")
    assert "fans out one visit per item of input 'xs'" in of("fan")
    assert "walks input 'tree' depth first, post-order (children's outputs flow up)" in of("walk")
    assert "children in kids" in of("walk")
    assert "breadth first, pre-order (parent output flows down)" in of("bf")
    assert "cuts input 's' into chunks of 1 and sends each chunk round a ring of 2" in of("spin")
    assert "2 round(s)" in of("spin")
    assert "runs its units side by side, then gathers their outputs" in of("side")
    assert "runs its units in order" in of("inner")
    assert "after prep: macro section fan [fanout]" in of("fan")


def test_describe_follows_flowrefs_one_level_deeper(plan: Plan) -> None:
    lines = describe(plan)
    (at,) = [i for i, x in enumerate(lines) if "flowRef sub -> flow child" in x]
    ref = lines[at]
    assert ref.startswith("    after fan, walk, spin: flowRef sub -> flow child (")
    assert ref.endswith("child.flow.yaml, inputs n bound here)")
    assert lines[at + 1].startswith("      micro section inner [sequence]")
    assert lines[at + 2] == "        step load: cat x"


def test_the_graph_holds_every_section_and_unit(plan: Plan) -> None:
    built = flow_graph(plan)
    labels = {data["label"] for _, data in built.graph.nodes(data=True)}
    assert {"prep", "total", "r", "l", "r1", "r2", "f1", "f2", "fg", "load", "use"} <= labels
    assert "sq-{{ index }} (per item)" in labels
    assert "b (per node)" in labels
    assert "visit per node: first case that holds" in labels
    cluster_labels = {c.label for c in built.clusters.values()}
    for name, (scope, pattern, bound) in SECTIONS.items():
        assert any(
            label.startswith(f"{name}: {scope} {pattern}, maxActive {bound}")
            for label in cluster_labels
        ), name
    assert "flowRef sub: flow child" in cluster_labels


def test_the_graph_edges(plan: Plan) -> None:
    built = flow_graph(plan)
    label = {node: data["label"] for node, data in built.graph.nodes(data=True)}
    edges = {(label[a], label[b]) for a, b in built.graph.edges}
    assert ("prep", "sq-{{ index }} (per item)") in edges  # dag dependency into a fan-out
    assert ("sq-{{ index }} (per item)", "total") in edges  # visits gathered
    assert ("total", "load") in edges  # the fan-out's result flows into the flowRef
    assert ("r1", "r2") in edges and ("r2", "r1") in edges  # a ring, 2 rounds
    assert ("load", "use") in edges  # a sequence
    assert ("f1", "fg") in edges and ("f2", "fg") in edges  # fan-in
    assert ("b (per node)", "b (per node)") in edges  # bfs: parent to child
    assert ("prep", "r1") not in edges  # spin has no dependencies


def test_a_single_round_ring_has_no_way_back(
    write: Callable[[str, str], Path], write_flow: Callable[..., Path]
) -> None:
    write("s.json", "[1, 2]")
    path = write_flow(
        "f.yaml",
        """
        inputs: {s: {path: s.json}}
        root:
          name: spin
          scope: micro
          pattern: cycle
          over: {input: s, chunk: 1}
          ring:
            - {name: a, run: {command: [x]}}
            - {name: b, run: {command: [x]}}
            - {name: c, run: {command: [x]}}
        """,
    )
    built = flow_graph(compile_plan(path))
    label = {node: data["label"] for node, data in built.graph.nodes(data=True)}
    assert {(label[a], label[b]) for a, b in built.graph.edges} == {("a", "b"), ("b", "c")}
    assert "next round" not in to_mermaid(built)


def test_mermaid(plan: Plan) -> None:
    text = to_mermaid(flow_graph(plan))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert text.endswith("\n")
    for name, (scope, pattern, bound) in SECTIONS.items():
        assert re.search(rf'subgraph n\d+\["{name}: {scope} {pattern}, maxActive {bound}', text)
    for step in ["prep", "total", "load", "use", "fg"]:
        assert re.search(rf'n\d+\["{re.escape(step)}"\]', text), step
    assert re.search(r'n\d+\{"visit per node: first case that holds"\}', text)
    subgraphs = sum(1 for x in lines if x.strip().startswith("subgraph "))
    assert subgraphs == len(SECTIONS) + 1  # and the flowRef
    assert subgraphs == sum(1 for x in lines if x.strip() == "end")
    assert re.search(r"""n\d+ -->\|"node.kind == 'root'"\| n\d+""", text)  # quotes made safe
    assert re.search(r'n\d+ -->\|"next round \(2 in all\)"\| n\d+', text)


def _outside_quotes(text: str) -> str:
    kept: list[str] = []
    quoted = False
    for i, char in enumerate(text):
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted:
            kept.append(char)
    assert not quoted, "an unterminated string"
    return "".join(kept)


def test_dot(plan: Plan) -> None:
    text = to_dot(flow_graph(plan))
    assert text.startswith("digraph flow {\n")
    assert text.endswith("}\n")
    code = _outside_quotes(text)
    depth = 0
    for char in code:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert code.count("{") == len(SECTIONS) + 2  # the digraph, each section, the flowRef
    for name, (scope, pattern, bound) in SECTIONS.items():
        assert f'label="{name}: {scope} {pattern}, maxActive {bound}' in text
    assert 'label="flowRef sub: flow child";' in text
    declared = set(re.findall(r"^\s*(n\d+) \[label=", text, re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+)", text, re.M)
    assert edges
    assert {n for edge in edges for n in edge} <= declared
    assert len(declared) == len(STEPS) + 2  # and the bfs visit, the choice of case
    assert "label=\"node.kind == 'root'\"" in text
    assert "subgraph cluster_" in text


def test_dot_parses_as_graphviz_dot(plan: Plan) -> None:
    (graph,) = pydot.graph_from_dot_data(to_dot(flow_graph(plan)))
    clusters = [sub.get_name() for sub in graph.get_subgraphs()]
    assert clusters
    assert all(name.startswith("cluster_") for name in clusters)


def test_describe_shows_a_steps_own_bounds_and_keeps_a_script_on_its_line(tmp_path: Path) -> None:
    flow = tmp_path / "own.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: own}\n"
        "spec:\n  root: {name: a, retries: 3, timeoutSeconds: 1.5,"
        ' run: {command: [python3, -c, "import sys\\nprint(1)"]}}\n'
    )
    lines = describe(compile_plan(flow))
    assert lines[-1] == "  step a (3 retries, timeout 1.5 s): python3 -c 'import sys\\nprint(1)'"


ENTRIES = """
inputs: {wf: {value: {jobs: {a: {steps: [1]}}}}}
root:
  name: walk
  scope: macro
  pattern: dfs
  over: {input: wf, entries: jobs}
  visit:
    name: job
    scope: micro
    pattern: fanout
    over: {path: /steps, dependsOn: needs}
    visit: {name: s, run: {command: ["true"]}}
"""


def test_describe_says_how_named_entries_are_walked(write_flow: Callable[..., Path]) -> None:
    lines = describe(compile_plan(write_flow("e.flow.yaml", ENTRIES, "entries")))
    assert any("depth first" in line and "; named entries in jobs" in line for line in lines)
    assert any(
        "fans out one visit per item of the visit's node at /steps, each after the items its "
        "'needs' names" in line
        for line in lines
    )

"""meta.flow.parse.load_flow: the typed model built from a flow file."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meta.errors import FlowInvalid
from meta.flow.files import display_path
from meta.flow.model import (
    Case,
    Cases,
    Defaults,
    FileInput,
    FlowRef,
    Origin,
    Over,
    Run,
    Section,
    Step,
    ValueInput,
    max_active,
)
from meta.flow.parse import load_flow, read_document

HEADER = "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: NAME}\n"


@pytest.fixture
def write_flow(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, spec: str, flow_name: str = "t") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        path.write_text(HEADER.replace("NAME", flow_name) + "spec:\n" + body + "\n")
        return path

    return write


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """Run the test from a working directory that is not the flow's directory."""
    away = tmp_path / "elsewhere"
    away.mkdir()
    before = Path.cwd()
    os.chdir(away)
    try:
        yield away
    finally:
        os.chdir(before)


def test_a_step_flow_and_the_defaults(write_flow: Callable[..., Path]) -> None:
    path = write_flow("one.flow.yaml", "root: {name: a, run: {command: [echo, hi]}}", "one")
    flow = load_flow(path)
    assert flow.name == "one"
    assert flow.source == path.resolve()
    assert flow.inputs == {}
    assert flow.defaults == Defaults(retries=0, timeout_seconds=3600.0, retry_backoff_seconds=1.0)
    assert flow.root == Step(
        name="a",
        run=Run(("echo", "hi"), None, {}),
        origin=Origin(display_path(path.resolve()), "/spec/root"),
    )


def test_defaults_given(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        defaults: {retries: 2, timeoutSeconds: 5, retryBackoffSeconds: 0.25}
        root: {name: a, run: {command: [x]}, retries: 4, timeoutSeconds: 1.5}
        """,
    )
    flow = load_flow(path)
    assert flow.defaults == Defaults(retries=2, timeout_seconds=5.0, retry_backoff_seconds=0.25)
    assert isinstance(flow.defaults.timeout_seconds, float)
    assert isinstance(flow.root, Step)
    assert (flow.root.retries, flow.root.timeout_seconds) == (4, 1.5)


def test_step_image_and_env(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml", "root: {name: a, run: {command: [x, y], image: 'py:3', env: {A: '1', B: b}}}"
    )
    step = load_flow(path).root
    assert isinstance(step, Step)
    assert step.run == Run(("x", "y"), "py:3", {"A": "1", "B": "b"})


def test_paths_are_resolved_relative_to_the_flow_file(
    write_flow: Callable[..., Path], tmp_path: Path, elsewhere: Path
) -> None:
    path = write_flow(
        "flows/main.flow.yaml",
        """
        inputs:
          tree: {path: data/tree.json}
          up: {path: ../shared/x.json}
          inline: {value: {a: [1, 2]}}
        root:
          name: s
          scope: macro
          pattern: sequence
          units:
            - name: sub
              flowRef:
                path: sub/child.flow.yaml
                inputs: {data: {path: data/other.json}, n: {value: 3}}
        """,
    )
    flow = load_flow(Path("..") / "flows" / "main.flow.yaml")  # relative to the cwd
    flows = tmp_path / "flows"
    assert flow.source == path.resolve()
    assert flow.inputs == {
        "tree": FileInput((flows / "data" / "tree.json").resolve()),
        "up": FileInput((tmp_path / "shared" / "x.json").resolve()),
        "inline": ValueInput({"a": [1, 2]}),
    }
    assert isinstance(flow.root, Section)
    (ref,) = flow.root.units
    assert isinstance(ref, FlowRef)
    assert ref.path == (flows / "sub" / "child.flow.yaml").resolve()
    assert ref.inputs == {
        "data": FileInput((flows / "data" / "other.json").resolve()),
        "n": ValueInput(3),
    }
    assert ref.origin.pointer == "/spec/root/units/0"
    assert all(p.is_absolute() for p in (flow.source, ref.path))


def test_a_dag_section(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        root:
          name: d
          scope: micro
          pattern: dag
          units:
            - {name: a, run: {command: [x]}}
            - {name: b, run: {command: [x]}, dependsOn: [a]}
        """,
    )
    root = load_flow(path).root
    assert isinstance(root, Section)
    assert (root.name, root.scope, root.pattern) == ("d", "micro", "dag")
    assert (root.max_active, max_active(root)) == (None, 4)
    assert [u.name for u in root.units] == ["a", "b"]
    assert [u.depends_on for u in root.units] == [(), ("a",)]
    assert [u.origin.pointer for u in root.units] == ["/spec/root/units/0", "/spec/root/units/1"]
    assert (root.over, root.visit, root.gather, root.ring) == (None, None, None, ())
    assert (root.order, root.rounds) == ("pre", 1)


def test_a_tree_section_with_one_children_field(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        inputs: {tree: {value: {}}}
        root:
          name: walk
          scope: macro
          pattern: bfs
          maxActive: 3
          over: {input: tree, path: /root, children: kids}
          visit: {name: v, run: {command: [x]}}
        """,
    )
    root = load_flow(path).root
    assert isinstance(root, Section)
    assert root.over == Over(input="tree", path="/root", children=("kids",), chunk=0)
    assert (root.order, root.max_active, max_active(root)) == ("pre", 3, 3)
    assert isinstance(root.visit, Step)
    assert root.visit.origin.pointer == "/spec/root/visit"


def test_a_post_order_dfs_with_cases(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        inputs: {tree: {value: {}}}
        root:
          name: walk
          scope: micro
          pattern: dfs
          order: post
          over: {input: tree, children: [departments, teams]}
          visit:
            cases:
              - when: "node.kind == 'team'"
                unit: {name: "team-{{ node.name }}", run: {command: [x]}}
              - when: "depth == 0"
                unit:
                  name: top
                  scope: micro
                  pattern: sequence
                  units: [{name: a, run: {command: [y]}}]
        """,
    )
    root = load_flow(path).root
    assert isinstance(root, Section)
    assert root.order == "post"
    assert root.over is not None and root.over.children == ("departments", "teams")
    assert max_active(root) == 1
    assert isinstance(root.visit, Cases)
    first, second = root.visit.cases
    assert isinstance(first, Case)
    assert first.when == "node.kind == 'team'"
    assert first.origin.pointer == "/spec/root/visit/cases/0"
    assert isinstance(first.unit, Step) and first.unit.name == "team-{{ node.name }}"
    assert first.unit.origin.pointer == "/spec/root/visit/cases/0/unit"
    assert second.when == "depth == 0"
    assert isinstance(second.unit, Section)
    assert second.unit.units[0].origin.pointer == "/spec/root/visit/cases/1/unit/units/0"


def test_fanout_with_gather_and_cycle_with_ring(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        inputs: {xs: {value: [1]}, s: {path: s.jsonl}}
        root:
          name: s
          scope: macro
          pattern: sequence
          units:
            - name: fan
              scope: macro
              pattern: fanout
              over: {input: xs}
              visit: {name: "v-{{ index }}", run: {command: [x]}}
              gather: {name: g, run: {command: [x]}}
            - name: ring
              scope: micro
              pattern: cycle
              rounds: 2
              over: {input: s, chunk: 10}
              ring:
                - {name: r1, run: {command: [x]}}
                - {name: r2, run: {command: [x]}}
                - {name: r3, run: {command: [x]}}
        """,
    )
    root = load_flow(path).root
    assert isinstance(root, Section) and max_active(root) == 1
    fan, ring = root.units
    assert isinstance(fan, Section) and isinstance(ring, Section)
    assert fan.over == Over("xs")
    assert isinstance(fan.gather, Step)
    assert fan.gather.origin.pointer == "/spec/root/units/0/gather"
    assert max_active(fan) == 4
    assert ring.over == Over("s", chunk=10)
    assert ring.rounds == 2
    assert [m.name for m in ring.ring] == ["r1", "r2", "r3"]
    assert [m.origin.pointer for m in ring.ring][-1] == "/spec/root/units/1/ring/2"
    assert max_active(ring) == 3  # a cycle's default is its ring size


def test_schema_faults_raise_flow_invalid_listing_every_fault(
    write_flow: Callable[..., Path],
) -> None:
    path = write_flow("f.yaml", "root: {name: a, run: {command: [x]}, colour: red, retries: -1}")
    with pytest.raises(FlowInvalid) as caught:
        load_flow(path)
    assert [(f.pointer, f.reason.split(" (")[0]) for f in caught.value.faults] == [
        ("/spec/root/colour", "unknown field 'colour'"),
        ("/spec/root/retries", "must be >= 0, got -1"),
    ]
    assert {f.file for f in caught.value.faults} == {display_path(path.resolve())}


def test_semantic_faults_raise_flow_invalid(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        """
        root:
          name: s
          scope: macro
          pattern: sequence
          units: [{name: a, run: {command: [x]}}, {name: a, run: {command: [x]}}]
        """,
    )
    with pytest.raises(FlowInvalid) as caught:
        load_flow(path)
    (fault,) = caught.value.faults
    assert fault.pointer == "/spec/root/units/1/name"
    assert "duplicate unit name 'a'" in fault.reason


def test_missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(FlowInvalid) as caught:
        load_flow(tmp_path / "none.yaml")
    assert [(f.pointer, f.reason) for f in caught.value.faults] == [("", "no such file")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(FlowInvalid) as caught:
        read_document(bad)
    (fault,) = caught.value.faults
    assert fault.pointer == ""
    assert fault.reason.startswith("invalid YAML: line 2, column 2: ")
    assert str(fault) == f"{fault.file}: /: {fault.reason}"


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(FlowInvalid):
        read_document(path)
    assert not (tmp_path / "pwned").exists()


def test_display_path_is_relative_below_the_cwd(tmp_path: Path, elsewhere: Path) -> None:
    assert display_path(elsewhere / "a" / "f.yaml") == os.path.join("a", "f.yaml")
    assert display_path(tmp_path / "f.yaml") == str(tmp_path / "f.yaml")
    assert display_path(Path("rel.yaml")) == "rel.yaml"


def test_pod_gc_takes_the_flow_languages_names_and_argos(write_flow: Callable[..., Path]) -> None:
    root = "root: {name: a, run: {command: [x]}}"
    assert load_flow(write_flow("keep.yaml", root)).pod_gc == ""
    for given, meant in [
        ("OnPodCompletion", "OnPodCompletion"),
        ("OnWorkflowSuccess", "OnFlowSuccess"),
    ]:
        path = write_flow(f"{given}.yaml", f"podGC: {{strategy: {given}}}\n{root}")
        assert load_flow(path).pod_gc == meant
    with pytest.raises(FlowInvalid) as caught:
        load_flow(write_flow("bad.yaml", f"podGC: {{strategy: Never}}\n{root}"))
    assert [f.pointer for f in caught.value.faults] == ["/spec/podGC/strategy"]


def test_parallelism_is_a_whole_number_of_one_or_more(write_flow: Callable[..., Path]) -> None:
    root = "root: {name: a, run: {command: [x]}}"
    assert load_flow(write_flow("free.yaml", root)).parallelism is None
    assert load_flow(write_flow("four.yaml", f"parallelism: 4\n{root}")).parallelism == 4
    for given in ("0", "-1", "2.5", "'3'", "true"):
        with pytest.raises(FlowInvalid) as caught:
            load_flow(write_flow("bad.yaml", f"parallelism: {given}\n{root}"))
        assert [f.pointer for f in caught.value.faults] == ["/spec/parallelism"], given

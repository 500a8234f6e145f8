"""The tree generator: hierarchies become dfs/bfs walks with one visit case per node type, whose
`when` expressions tell the types apart at run time (when the types run steps of their own; a
flow that only validates has a case per place, checking each node as jsonschema does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from meta_generators import tree

from meta.errors import pointer
from tests.generators.helpers import SAMPLES, Schemas, command, run_meta, schema, visit_cases


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def many(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


def node_type(*required: str, run: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "object", "required": list(required), "properties": properties}
    if run is not None:
        found["x-meta"] = {"run": {"command": run}}
    return found


def org(**x_meta: Any) -> dict[str, Any]:
    """Company -> departments -> teams, no discriminator: each type sits at one depth."""
    return schema(
        **{"$ref": "#/$defs/company", "x-meta": x_meta} if x_meta else {"$ref": "#/$defs/company"},
        **{
            "$defs": {
                "company": node_type("name", name={"type": "string"}, departments=many("dept")),
                "dept": node_type("name", name={"type": "string"}, teams=many("team")),
                "team": node_type("name", name={"type": "string"}, size={"type": "integer"}),
            }
        },
    )


def running(document: dict[str, Any], name: str) -> dict[str, Any]:
    """`document` with a step of its own for the node type `name`: its walk tells types apart."""
    document["$defs"][name]["x-meta"] = {"run": {"command": ["echo", name]}}
    return document


def test_the_company_sample_gets_a_different_operation_per_level(schemas: Schemas) -> None:
    document = json.loads((SAMPLES / "company.schema.json").read_text())
    flow = schemas.flow(document)
    root = flow["spec"]["root"]
    assert (root["pattern"], root["order"], root["scope"], root["maxActive"]) == (
        "dfs",
        "post",
        "macro",
        2,
    )
    assert root["over"] == {"input": "data", "children": ["departments", "teams", "members"]}
    assert visit_cases(flow) == [
        ("node.kind is defined and node.kind == 'company'", "company"),
        ("node.kind is defined and node.kind == 'department'", "department"),
        ("node.kind is defined and node.kind == 'team'", "team"),
        ("node.kind is defined and node.kind == 'person'", "person"),
    ]
    runs = [command(case["unit"]) for case in root["visit"]["cases"]]
    assert runs[:3] == [
        ["python3", "company.py", "{{ node.name }}"],
        ["python3", "department.py", "{{ node.name }}", "{{ node.budgetPerHead }}"],
        ["python3", "team.py", "{{ node.name }}"],
    ]
    assert runs[3] == [
        "meta",
        "step",
        "validate-node",
        "--schema=doc.schema.json",
        "--pointer=/$defs/person",
        "--children=departments",
        "--children=teams",
        "--children=members",
        shapes("departments", "teams", "members"),
        "--path={{ path | tojson }}",
    ]


def test_types_at_one_depth_each_are_told_apart_by_depth(schemas: Schemas) -> None:
    assert visit_cases(schemas.flow(running(org(), "team"))) == [
        ("depth == 0", "company"),
        ("depth == 1", "dept"),
        ("depth == 2", "team"),
    ]


def test_otherwise_a_required_property_of_its_own_tells_a_type(schemas: Schemas) -> None:
    document = schema(
        **{
            "$ref": "#/$defs/folder",
            "$defs": {
                "folder": node_type(
                    "entries",
                    entries={"type": "array", "items": {"oneOf": [ref("folder"), ref("file")]}},
                ),
                "file": node_type("size", size={"type": "integer"}, run=["wc", "-c"]),
            },
        }
    )
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["entries"]
    assert visit_cases(flow) == [("'entries' in node", "folder"), ("'size' in node", "file")]


def test_a_discriminator_beats_depth_and_quotes_safely(schemas: Schemas) -> None:
    document = org()
    for name, value in (("company", "co'op"), ("dept", "dept"), ("team", 7)):
        document["$defs"][name]["properties"]["items"] = {"const": value}
        document["$defs"][name]["required"].append("items")
    assert visit_cases(schemas.flow(running(document, "dept"))) == [
        ("node['items'] is defined and node['items'] == 'co\\'op'", "company"),
        ("node['items'] is defined and node['items'] == 'dept'", "dept"),
        ("node['items'] is defined and node['items'] == 7", "team"),
    ]


def test_a_flow_that_only_validates_checks_each_node_as_its_place_holds_it(
    schemas: Schemas,
) -> None:
    document = org()
    for name in ("company", "dept", "team"):
        document["$defs"][name]["properties"]["kind"] = {"const": name}
        document["$defs"][name]["required"].append("kind")
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["misfits"] == "keep"
    # The order of checks does not matter: side by side, unless x-meta.maxActive says.
    assert flow["spec"]["root"]["maxActive"] == 4
    assert "maxActive" not in schemas.flow(running(org(), "team"))["spec"]["root"]
    assert visit_cases(flow) == [
        ("depth == 0", "company"),
        (
            "depth > 0 and (path.split('/')[-2] == 'departments' and "
            "path.split('/')[-1].isdigit())",
            "dept",
        ),
        (
            "depth > 0 and (path.split('/')[-2] == 'teams' and path.split('/')[-1].isdigit())",
            "team",
        ),
        ("true", "misplaced"),
    ]


def test_types_that_no_property_tells_apart_are_told_by_the_field_holding_them(
    schemas: Schemas,
) -> None:
    document = schema(
        **{
            "$ref": "#/$defs/a",
            "$defs": {
                "a": node_type("x", x={"type": "string"}, kids=many("b"), lead=ref("c")),
                "b": node_type("x", x={"type": "string"}, kids=many("a")),
                "c": node_type("x", x={"type": "string"}, run=["echo"]),
            },
        }
    )
    flow = schemas.flow(document)
    assert visit_cases(flow) == [
        ("depth == 0", "a"),
        ("depth > 0 and (path.split('/')[-2] == 'kids' and path.split('/')[-1].isdigit())", "kids"),
        ("depth > 0 and path.split('/')[-1] == 'lead'", "c"),
    ]
    kids = flow["spec"]["root"]["visit"]["cases"][1]["unit"]
    # Children in 'kids' may be of either type: the node is checked against both.
    assert command(kids)[3:6] == [
        "--schema=doc.schema.json",
        "--pointer=/$defs/b",
        "--pointer=/$defs/a",
    ]


def test_a_validator_leaves_a_field_of_several_schemas_to_the_node_holding_it(
    schemas: Schemas,
) -> None:
    """A unit knows its node's field, not its parent's type: a node of `kids` checked against
    both types could pass as the other. Such a field is checked with its parent, as data."""
    document = schema(
        **{
            "$ref": "#/$defs/a",
            "$defs": {
                "a": node_type("x", x={"type": "string"}, kids=many("b"), lead=ref("c")),
                "b": node_type("y", y={"type": "string"}, kids=many("a")),
                "c": node_type("x", x={"type": "string"}),
            },
        }
    )
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["lead"]
    assert any(
        "kids (nodes of one schema in /$defs/a, of another in /$defs/b" in line
        for line in schemas.explain(document)
    )


def test_a_recursive_single_type_gets_a_plain_visit(schemas: Schemas) -> None:
    document = schema(
        title="Tree Sum!",
        type="object",
        properties={"value": {"type": "number"}, "kids": many("node").copy()},
        **{"$defs": {"node": {"$ref": "#"}}},
    )
    flow = schemas.flow(document)
    assert flow["metadata"]["name"] == "tree-sum"
    visit = flow["spec"]["root"]["visit"]
    assert visit["name"] == "tree-sum"
    assert command(visit)[4:] == [
        "--pointer=",
        "--children=kids",
        shapes("kids"),
        "--path={{ path | tojson }}",
    ]


def test_bfs_pre_order_and_micro_scope_come_from_x_meta(schemas: Schemas) -> None:
    flow = schemas.flow(org(pattern="bfs", order="pre", scope="micro", name="walk-org"))
    root = flow["spec"]["root"]
    assert flow["metadata"]["name"] == "walk-org"
    assert (root["pattern"], root["order"], root["scope"]) == ("bfs", "pre", "micro")
    # Pre-order: the parent's report is upstream, so the validator does not add it up.
    for case in root["visit"]["cases"]:
        assert command(case["unit"])[-1] == "--no-subtree"


def test_one_object_children_and_templated_runs(schemas: Schemas) -> None:
    document = org()
    document["$defs"]["team"]["properties"]["lead"] = ref("person")
    document["$defs"]["person"] = node_type(
        "email",
        email={"type": "string"},
        run=["python3", "p.py", "{{ node.email }}", "{{ depth }}"],
    )
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["departments", "teams", "lead"]
    assert visit_cases(flow)[-1] == ("depth == 3", "person")
    last = flow["spec"]["root"]["visit"]["cases"][-1]["unit"]
    assert last["run"] == {"command": ["python3", "p.py", "{{ node.email }}", "{{ depth }}"]}


def test_a_node_run_reads_its_childrens_results_through_upstream(schemas: Schemas) -> None:
    document = org()
    total = "{{ upstream.values() | map(attribute='result') | sum }}"
    document["$defs"]["dept"]["x-meta"] = {"run": {"command": ["echo", total]}}
    flow = schemas.flow(document)
    cases = flow["spec"]["root"]["visit"]["cases"]
    assert ["echo", total] in [case["unit"]["run"]["command"] for case in cases]


def test_entries_keyed_by_name_are_walked_as_nodes_at_any_depth(schemas: Schemas) -> None:
    document = org()
    defs = document["$defs"]
    defs["company"]["properties"]["departments"] = {
        "type": "object",
        "additionalProperties": ref("dept"),
    }
    defs["dept"]["properties"]["teams"] = {
        "type": "object",
        "patternProperties": {"^[a-z]+$": ref("team")},
        "additionalProperties": False,
    }
    defs["team"]["properties"]["members"] = many("person")
    defs["person"] = node_type("email", email={"type": "string"})
    flow = schemas.flow(document)
    root = flow["spec"]["root"]
    assert root["over"] == {
        "input": "data",
        "children": ["members"],
        "entries": ["departments", "teams"],
        "misfits": "keep",
    }
    assert visit_cases(flow) == [
        ("depth == 0", "company"),
        ("depth > 0 and path.split('/')[-2] == 'departments'", "dept"),
        ("depth > 0 and path.split('/')[-2] == 'teams'", "team"),
        (
            "depth > 0 and (path.split('/')[-2] == 'members' and path.split('/')[-1].isdigit())",
            "person",
        ),
        ("true", "misplaced"),
    ]
    assert [when for when, _ in visit_cases(schemas.flow(running(document, "team")))] == [
        "depth == 0",
        "depth == 1",
        "depth == 2",
        "depth == 3",
    ]
    fields = ["--entries=departments", "--entries=teams", "--children=members"]
    assert set(fields) <= set(command(root["visit"]["cases"][0]["unit"]))


def test_a_map_that_may_hold_other_values_is_not_walked(schemas: Schemas) -> None:
    document = org()
    document["$defs"]["company"]["properties"]["departments"] = {
        "type": "object",
        "patternProperties": {"^d": ref("dept")},
    }
    (fault,) = schemas.faults(document, generator="tree")
    assert fault == (
        "doc.schema.json: /: generator 'tree' does not understand this description: "
        "no property of the node types holds objects (with properties) or arrays of them"
    )


def test_entries_of_one_field_and_children_of_another_tell_their_nodes_apart(
    schemas: Schemas,
) -> None:
    """Without a depth or a discriminator, the field holding a node names its case; an entry's
    test comes first, as its key may be the name of a field holding one node."""
    document = schema(
        type="object",
        properties={
            "jobs": {"type": "object", "additionalProperties": ref("job")},
            "lead": ref("job"),
        },
        **{
            "$defs": {"job": node_type(jobs={"type": "object", "additionalProperties": ref("job")})}
        },
    )
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"] == {
        "input": "data",
        "children": ["lead"],
        "entries": ["jobs"],
        "misfits": "keep",
    }
    assert visit_cases(flow) == [
        ("depth == 0", "root"),
        ("depth > 0 and path.split('/')[-2] == 'jobs'", "job"),
        ("depth > 0 and path.split('/')[-1] == 'lead'", "job-2"),
        ("true", "misplaced"),
    ]


def test_a_field_of_entries_here_and_of_one_node_there_is_not_walked(schemas: Schemas) -> None:
    document = org()
    document["$defs"]["company"]["properties"]["teams"] = {
        "type": "object",
        "additionalProperties": ref("team"),
    }
    flow = schemas.flow(document, generator="tree")
    assert flow["spec"]["root"]["over"] == {
        "input": "data",
        "children": ["departments"],
        "misfits": "keep",
    }
    described = schemas.explain(document)
    assert (
        "not walked: teams (entries keyed by name in /$defs/company, an object or an array in "
        "/$defs/dept)"
    ) in described


def test_a_children_field_that_is_data_elsewhere_is_not_walked(schemas: Schemas) -> None:
    document = org()
    document["$defs"]["company"]["properties"]["board"] = many("team")
    document["$defs"]["team"]["properties"]["departments"] = {"type": "string"}
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["board"]


def test_a_run_the_tree_does_not_use_is_an_error(schemas: Schemas) -> None:
    document = org()
    document["$defs"]["unused"] = node_type(run=["echo"])
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/unused/x-meta/run: x-meta.run here is not used by generator "
        "'tree' (it runs the node types of the hierarchy)"
    ]


def test_a_template_with_an_unknown_variable_is_named_where_it_is_written(
    schemas: Schemas,
) -> None:
    document = org()
    document["$defs"]["team"]["x-meta"] = {"run": {"command": ["x", "{{ nod.name }}"]}}
    faults = schemas.faults(document)
    assert len(faults) == 1
    assert faults[0].startswith(
        "doc.schema.json: /$defs/team/x-meta/run/command/1: undefined template variable 'nod'"
    )


@pytest.mark.parametrize(
    ("key", "value"), [("chunk", 10), ("gather", True), ("ring", [{"name": "a"}]), ("rounds", 2)]
)
def test_root_keys_for_other_patterns_are_errors(schemas: Schemas, key: str, value: Any) -> None:
    faults = schemas.faults(org(**{key: value}))
    assert len(faults) == 1
    assert faults[0].startswith(f"doc.schema.json: /x-meta/{key}: x-meta.{key} applies to ")
    assert faults[0].endswith("generator 'tree' makes a dfs")


def test_an_explicit_tree_pattern_without_a_hierarchy_says_so(schemas: Schemas) -> None:
    document = schema(
        type="object", properties={"a": {"type": "string"}}, **{"x-meta": {"pattern": "dfs"}}
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /: not a hierarchy: no property of the root type holds objects or arrays "
        "of objects"
    ]


def test_names_and_paths_reach_the_validator_as_written(tmp_path: Path) -> None:
    """A schema file starting with '-', a field named like a template and one holding a comma:
    the run checks the pointers and fields written, not what argparse or Jinja make of them."""
    node = {"type": "object", "properties": {"{{ 7*7 }}": {"type": "integer"}}}
    document = {
        "type": "object",
        "required": ["a,b"],
        "properties": {"a,b": {"type": "array", "items": node}, "{{ 7*7 }}": node},
    }
    (tmp_path / "-rf.schema.json").write_text(json.dumps(document))
    data = {"a,b": [{"{{ 7*7 }}": 1}], "{{ 7*7 }}": {"{{ 7*7 }}": "x"}}
    (tmp_path / "d.json").write_text(json.dumps(data))
    made = run_meta(
        "generate", "./-rf.schema.json", "--data", "d.json", "-o", "f.yaml", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    ran = run_meta("run", "f.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    reports = [json.loads(p.read_text()) for p in (tmp_path / "run").rglob("report.json")]
    errors = [e for report in reports if "unit" in report for e in report["errors"]]
    assert errors == [
        {"pointer": "/{{ 7*7 }}/{{ 7*7 }}", "message": "'x' is not of type 'integer'"}
    ]


def test_a_map_too_big_for_a_command_line_and_a_key_holding_a_nul_are_checked(
    tmp_path: Path,
) -> None:
    """Keys a command line cannot carry: a map whose keys add up to more than a megabyte (its
    node is read from the data instead) and a key holding a NUL (its path passes as a JSON
    string). The run finds what jsonschema finds, error for error."""
    team = {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer"}}}
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "teams": {
                "type": "object",
                "propertyNames": {"maxLength": 60_002},
                "additionalProperties": {"$ref": "#/$defs/team"},
            }
        },
        "$defs": {"team": team},
    }
    long_keys = {f"{i:02}" + "k" * 60_000: {"size": i} for i in range(18)}
    teams = {**long_keys, "a\u0000b": {"size": "no"}, "x" * 60_003: {}, "ok": {"size": 2}}
    # More than a template may write (a megabyte): the keys are measured, never written out.
    assert sum(map(len, teams)) > 1 << 20
    (tmp_path / "t.schema.json").write_text(json.dumps(document))
    (tmp_path / "d.json").write_text(json.dumps({"teams": teams}))
    made = run_meta("generate", "t.schema.json", "--data", "d.json", "-o", "f.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ran = run_meta("run", "f.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    reports = [json.loads(p.read_text()) for p in (tmp_path / "run").rglob("report.json")]
    found = sorted(
        (e["pointer"], e["message"])
        for report in reports
        if "unit" in report
        for e in report["errors"]
    )
    expected = sorted(
        (pointer(list(error.absolute_path)), error.message)
        for error in Draft202012Validator(document).iter_errors({"teams": teams})
    )
    # The same places and faults; a message here quotes a long key cut short.
    assert len(expected) == 3
    assert [(at, message.split("'")[-1]) for at, message in found] == [
        (at, message.split("'")[-1]) for at, message in expected
    ]


def shapes(*fields: str) -> str:
    """The generated --shapes option for these children fields."""
    share = tree.SHAPES_LIMIT // len(fields)
    return "--shapes=" + tree.SHAPES.format(fields=repr(list(fields)), share=share)


def test_a_value_like_a_template_in_a_case_is_compared_as_written(tmp_path: Path) -> None:
    """A tree's node kinds told apart by a const holding '{{': the case compares the text (a
    `when` holding it would read as a template, true for every node)."""
    document = {
        "$ref": "#/$defs/root",
        "x-meta": {"name": "tt"},
        "$defs": {
            "root": {
                "type": "object",
                "required": ["kind", "kids"],
                "properties": {
                    "kind": {"const": "{{ 1 }}"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/leaf"}},
                },
            },
            "leaf": {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"const": "leaf"}},
            },
        },
    }
    (tmp_path / "t.schema.json").write_text(json.dumps(document))
    (tmp_path / "d.json").write_text(json.dumps({"kind": "{{ 1 }}", "kids": [{"kind": "leaf"}]}))
    made = run_meta("generate", "t.schema.json", "--data", "d.json", "-o", "f.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ran = run_meta("run", "f.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    reports = [json.loads(p.read_text()) for p in (tmp_path / "run").rglob("report.json")]
    assert [e for report in reports if "unit" in report for e in report["errors"]] == []


def test_types_a_constant_tells_apart_keep_their_cases_under_a_keyed_map(
    schemas: Schemas,
) -> None:
    """A map whose patterns select different types walks per field, unless a constant each type
    requires (a `kind`) tells them apart: then each type keeps its case (and its run)."""

    def kind(value: str, field: str) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["kind", field],
            "properties": {"kind": {"const": value}, field: {}, "kids": {"$ref": "#/$defs/Kids"}},
            "x-meta": {"run": {"command": ["echo", value]}},
        }

    document = schema(
        type="object",
        required=["kind"],
        properties={"kind": {"const": "root"}, "kids": {"$ref": "#/$defs/Kids"}},
        **{
            "$defs": {
                "Kids": {
                    "type": "object",
                    "patternProperties": {"^a": {"$ref": "#/$defs/A"}, "^b": {"$ref": "#/$defs/B"}},
                    "additionalProperties": False,
                },
                "A": kind("a", "x"),
                "B": kind("b", "y"),
            }
        },
    )
    cases = visit_cases(schemas.flow(document, generator="tree"))
    assert [when for when, _ in cases] == [
        "node.kind is defined and node.kind == 'root'",
        "node.kind is defined and node.kind == 'a'",
        "node.kind is defined and node.kind == 'b'",
    ]

"""The dag, collection and stream generators: units, fan-outs and rings from $defs, arrays and
`x-meta.stream`, and the faults each names in the description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.generators.helpers import SAMPLES, Schemas, command, run_meta, schema

VALIDATE = ["meta", "step", "validate-node", "--schema=doc.schema.json"]


def stage(*depends: str, run: list[str] | None = None, **node: Any) -> dict[str, Any]:
    x_meta: dict[str, Any] = {}
    if depends:
        x_meta["dependsOn"] = list(depends)
    if run is not None:
        x_meta["run"] = {"command": run}
    return {**node, "x-meta": x_meta}


# --- dag ------------------------------------------------------------------------------------


def test_the_shop_sample_becomes_a_dag(schemas: Schemas) -> None:
    flow = schemas.flow(json.loads((SAMPLES / "shop.schema.json").read_text()))
    root = flow["spec"]["root"]
    assert (root["name"], root["pattern"], root["scope"]) == ("stages", "dag", "macro")
    assert [(u["name"], u.get("dependsOn", [])) for u in root["units"]] == [
        ("customer", []),
        ("product", []),
        ("order", ["customer", "product"]),
        ("revenue", ["order"]),
        ("verdict", ["customer", "product"]),
    ]
    assert command(root["units"][-1]) == [*VALIDATE[:3], "--summary", "--type=data"]
    customer = command(root["units"][0])
    assert customer == [
        *VALIDATE,
        "--pointer=/$defs/customer",
        "--each",
        "--data={{ inputs.data }}",
        "--at=/customers",
        "--no-subtree",
    ]


def test_a_def_held_by_one_nested_property_is_validated_there(schemas: Schemas) -> None:
    document = schema(
        type="object",
        properties={
            "meta": {"type": "object", "properties": {"owner": {"$ref": "#/$defs/person"}}}
        },
        **{
            "$defs": {
                "person": {"type": "object", "required": ["email"]},
                "notify": stage("person", run=["notify", "{{ inputs.data }}"]),
            }
        },
    )
    units = schemas.flow(document)["spec"]["root"]["units"]
    assert [u["name"] for u in units] == ["person", "notify", "verdict"]
    assert command(units[0])[4:] == [
        "--pointer=/$defs/person",
        "--data={{ inputs.data }}",
        "--at=/meta/owner",
        "--no-subtree",
    ]


def test_a_depends_on_naming_no_def_is_an_error(schemas: Schemas) -> None:
    document = schema(**{"$defs": {"a": stage(run=["a"]), "b": stage("a", "c", run=["b"])}})
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/b/x-meta/dependsOn/1: 'c' names no $defs entry (entries: a, b)"
    ]


def test_a_dependency_cycle_is_an_error(schemas: Schemas) -> None:
    document = schema(
        **{
            "$defs": {
                "a": stage("c", run=["a"]),
                "b": stage("a", run=["b"]),
                "c": stage("b", run=["c"]),
            }
        }
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/a/x-meta/dependsOn: dependency cycle: a -> c -> b -> a"
    ]


def test_a_def_without_run_or_data_is_an_error(schemas: Schemas) -> None:
    document = schema(**{"$defs": {"a": stage(), "b": stage("a", run=["b"])}})
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/a/x-meta: $defs entry 'a' has no x-meta.run, and no property "
        "from the root holds its data for the built-in validator to check: give it a run"
    ]


def test_dag_runs_cannot_use_node_variables(schemas: Schemas) -> None:
    document = schema(**{"$defs": {"a": stage(run=["a"]), "b": stage("a", run=["{{ node }}"])}})
    faults = schemas.faults(document)
    assert len(faults) == 1
    assert faults[0].startswith(
        "doc.schema.json: /$defs/b/x-meta/run/command/0: template variable 'node' is not "
        "defined here"
    )


def test_dag_runs_read_the_results_and_states_of_the_entries_they_depend_on(
    schemas: Schemas, tmp_path: Path
) -> None:
    write = "import json, os; json.dump({'n': 3}, open(os.environ['META_RESULT'], 'w'))"
    read = "import sys; open('seen.txt', 'w').write(' '.join(sys.argv[1:]))"
    document = schema(
        **{
            "$defs": {
                "count": stage(run=["python3", "-c", write]),
                "report": stage(
                    "count",
                    run=[
                        "python3", "-c", read,
                        "{{ upstream.count.state }}", "{{ upstream.count.result.n }}",
                    ],
                ),
            }
        }
    )  # fmt: skip
    flow = schemas.flow(document)
    assert command(flow["spec"]["root"]["units"][1])[-1] == "{{ upstream.count.result.n }}"
    (tmp_path / "doc.data.json").write_text("{}")
    generated = run_meta("generate", "doc.schema.json", "-o", "doc.flow.yaml", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    ran = run_meta("run", "doc.flow.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "seen.txt").read_text() == "succeeded 3"


def test_a_dag_run_reading_an_entry_it_does_not_depend_on_is_named_where_written(
    schemas: Schemas,
) -> None:
    document = schema(
        **{
            "$defs": {
                "a": stage(run=["a"]),
                "b": stage(run=["b"]),
                "c": stage("a", run=["c", "{{ upstream.b.result }}", "{{ upstream.a.state }}"]),
            }
        }
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/c/x-meta/run/command/1: upstream.b: 'b' does not feed this "
        "unit (the units that do, its x-meta.dependsOn: a)"
    ]


# --- collection -----------------------------------------------------------------------------


def test_a_top_level_array_fans_out_and_gathers_when_asked(schemas: Schemas) -> None:
    flow = schemas.flow(json.loads((SAMPLES / "tasks.schema.json").read_text()))
    root = flow["spec"]["root"]
    assert (root["pattern"], root["maxActive"], root["over"]) == ("fanout", 3, {"input": "data"})
    assert root["visit"]["name"] == "task"
    assert command(root["visit"]) == [
        *VALIDATE,
        "--pointer=/$defs/task",
        "--path={{ path | tojson }}",
        "--no-subtree",
    ]
    assert root["gather"] == {
        "name": "summary",
        "run": {
            "command": [
                *VALIDATE,
                "--pointer=",
                "--data={{ inputs.data }}",
                "--at=",
                "--fanned-out=",
            ]
        },
    }


def test_a_collection_with_an_inline_item_run_and_an_own_gather(schemas: Schemas) -> None:
    document = schema(
        type="array",
        items={"type": "object", "x-meta": {"run": {"command": ["one", "{{ item.id }}"]}}},
        **{"x-meta": {"gather": {"run": {"command": ["all", "{{ inputs.data }}"]}}}},
    )
    root = schemas.flow(document)["spec"]["root"]
    assert root["visit"] == {"name": "item", "run": {"command": ["one", "{{ item.id }}"]}}
    assert root["gather"] == {"name": "gather", "run": {"command": ["all", "{{ inputs.data }}"]}}
    declined = schema(type="array", items={}, **{"x-meta": {"gather": False}})
    assert "gather" not in schemas.flow(declined)["spec"]["root"]


def test_a_collection_checking_its_elements_checks_the_array_unasked(schemas: Schemas) -> None:
    root = schemas.flow(schema(type="array", items={}, minItems=2))["spec"]["root"]
    assert root["gather"]["name"] == "summary"
    assert command(root["gather"])[-3:] == ["--data={{ inputs.data }}", "--at=", "--fanned-out="]


def test_a_collection_needs_items(schemas: Schemas) -> None:
    assert schemas.faults(schema(type="array")) == [
        "doc.schema.json: /: a collection needs items: the schema of each element"
    ]


# --- stream ---------------------------------------------------------------------------------


def test_the_readings_sample_becomes_a_cycle(schemas: Schemas) -> None:
    flow = schemas.flow(json.loads((SAMPLES / "readings.schema.json").read_text()))
    assert flow["metadata"]["name"] == "readings"
    assert flow["spec"]["inputs"] == {"data": {"path": "doc.data.jsonl"}}
    root = flow["spec"]["root"]
    assert (root["pattern"], root["scope"], root["over"]) == (
        "cycle",
        "micro",
        {"input": "data", "chunk": 3},
    )
    assert [member["name"] for member in root["ring"]] == ["check", "tally"]
    assert command(root["ring"][0]) == [
        *VALIDATE,
        "--pointer=",
        "--each",
        "--offset={{ index * 3 }}",
        "--no-subtree",
    ]


def test_a_stream_defaults_to_chunks_of_100_and_one_validating_member(schemas: Schemas) -> None:
    document = schema(
        type="array", items={"$ref": "#/$defs/rec"}, **{"x-meta": {"stream": True, "rounds": 2}}
    )
    document["$defs"] = {"rec": {"type": "object"}}
    check = schemas.flow(document)["spec"]["root"]
    # Then one verdict on every record, from the chunks' reports.
    assert [(unit["name"], unit.get("pattern")) for unit in check["units"]] == [
        ("stream", "cycle"),
        ("verdict", None),
    ]
    assert command(check["units"][1])[3:] == ["--summary", "--type=stream"]
    root = check["units"][0]
    assert root["over"] == {"input": "data", "chunk": 100}
    assert root["rounds"] == 2
    assert [m["name"] for m in root["ring"]] == ["validate"]
    assert command(root["ring"][0])[4:5] == ["--pointer=/$defs/rec"]


def test_a_stream_record_run_is_the_ring(schemas: Schemas) -> None:
    document = schema(
        type="object",
        title="Clicks",
        **{"x-meta": {"stream": True, "run": {"command": ["count", "{{ index }}"]}}},
    )
    root = schemas.flow(document)["spec"]["root"]
    assert root["ring"] == [{"name": "clicks", "run": {"command": ["count", "{{ index }}"]}}]


def test_ring_names_repeat_and_max_active_above_the_ring_are_errors(schemas: Schemas) -> None:
    repeated = schema(**{"x-meta": {"stream": True, "ring": [{"name": "a"}, {"name": "a"}]}})
    assert schemas.faults(repeated) == [
        "doc.schema.json: /x-meta/ring/1/name: ring member name 'a' is repeated"
    ]
    busy = schema(**{"x-meta": {"stream": True, "maxActive": 2}})
    assert schemas.faults(busy) == [
        "doc.schema.json: /x-meta/maxActive: a cycle runs at most one unit per ring member: "
        "maxActive must be <= 1"
    ]


# --- shared ---------------------------------------------------------------------------------


def test_the_data_input_defaults_to_a_file_beside_the_schema(schemas: Schemas) -> None:
    flow = schemas.flow(schema(type="array", items={}), name="todo.schema.json")
    assert flow["metadata"]["name"] == "todo"
    assert flow["spec"]["inputs"] == {"data": {"path": "todo.data.json"}}


def test_the_data_input_is_the_given_file_relative_to_the_flow(
    schemas: Schemas, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    data = tmp_path / "in" / "list.json"
    flow = schemas.flow(schema(type="array", items={}), data=data)
    assert flow["spec"]["inputs"] == {"data": {"path": "in/list.json"}}
    assert flow["metadata"]["annotations"] == {
        "meta-orchestrator.io/generator": "collection",
        "meta-orchestrator.io/description": "doc.schema.json",
    }


@pytest.mark.parametrize(
    ("document", "generator", "why"),
    [
        (schema(type="array", items={}), "dag", "no $defs entry has x-meta.dependsOn"),
        (schema(type="array", items={}), "stream", "the root has no x-meta.stream: true"),
        (schema(type="array", items={}), "document", "the root is not an object type"),
    ],
)
def test_generators_that_do_not_understand_decline_and_say_why(
    schemas: Schemas, document: dict[str, Any], generator: str, why: str
) -> None:
    faults = schemas.faults(document, generator=generator)
    assert faults == [
        f"doc.schema.json: /: generator '{generator}' does not understand this description: {why}"
    ]

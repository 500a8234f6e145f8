"""Schemas as people publish them: every draft, any local `$ref`, files beside the schema, hints
in an overlay, YAML data, and reasons when no generator fits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from meta.errors import InputFault
from meta.flow.templates import render
from meta.generate.explain import explain
from meta.generate.pipeline import read_description
from meta.plan.inputs import read_json
from meta.steps.validate_node import main as validate_node
from tests.generators.helpers import REPO, Schemas, command, run_meta

DRAFT7 = "http://json-schema.org/draft-07/schema#"
SAMPLE = REPO / "samples" / "ci-workflow"


def person(**more: Any) -> dict[str, Any]:
    return {"type": "object", "required": ["name"], "properties": {"name": {}, **more}}


def test_a_draft_04_schema_with_definitions_id_and_dependencies_becomes_a_walk(
    schemas: Schemas,
) -> None:
    document = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "id": "http://example.com/org.json",
        "type": "object",
        "properties": {
            "staff": {"type": "array", "items": {"$ref": "#/definitions/person"}},
            "pair": {"type": "array", "items": [{"type": "string"}], "additionalItems": False},
        },
        "dependencies": {"pair": ["staff"]},
        "definitions": {"person": person(mentor={"$ref": "#/definitions/person"})},
    }
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["staff", "mentor"]


def test_refs_into_any_subschema_escaped_or_through_embedded_ids_resolve(
    schemas: Schemas,
) -> None:
    document = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/group/item"},
            "b": {"$ref": "#/definitions/a~1b/properties/inner"},
            "c": {"$ref": "http://example.com/embedded.json#/definitions/leaf"},
        },
        "definitions": {
            "group": {"item": person()},
            "a/b": {"type": "object", "properties": {"inner": person()}},
            "emb": {"$id": "http://example.com/embedded.json", "definitions": {"leaf": person()}},
        },
    }
    flow = schemas.flow(document)
    cases = flow["spec"]["root"]["visit"]["cases"]
    pointers = [
        arg.removeprefix("--pointer=")
        for case in cases
        for arg in command(case["unit"])
        if arg.startswith("--pointer=")
    ]
    assert pointers[1:] == [
        "/definitions/group/item",
        "/definitions/a~1b/properties/inner",
        "/definitions/emb/definitions/leaf",
    ]


@pytest.mark.parametrize(
    ("draft", "keyword", "anchor"),
    [
        ("https://json-schema.org/draft/2020-12/schema", "$dynamicRef", "$dynamicAnchor"),
        ("https://json-schema.org/draft/2019-09/schema", "$recursiveRef", "$recursiveAnchor"),
    ],
)
def test_dynamic_references_walk_a_recursive_type(
    schemas: Schemas, draft: str, keyword: str, anchor: str
) -> None:
    document = {
        "$schema": draft,
        anchor: "node" if keyword == "$dynamicRef" else True,
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kids": {
                "type": "array",
                "items": {keyword: "#node" if anchor.startswith("$dyn") else "#"},
            },
        },
    }
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"]["children"] == ["kids"]


def test_a_sibling_file_is_read_from_disk_even_under_an_https_id(
    schemas: Schemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    (schemas.root / "licence.schema.json").write_text(
        json.dumps({"$schema": DRAFT7, "definitions": {"licence": person(url={"type": "string"})}})
    )
    document = {
        "$schema": DRAFT7,
        "$id": "https://example.org/schema/bom.schema.json",
        "type": "object",
        "properties": {
            "licences": {
                "type": "array",
                "items": {"$ref": "licence.schema.json#/definitions/licence"},
            }
        },
    }
    flow = schemas.flow(document)
    unit = flow["spec"]["root"]["visit"]["cases"][1]["unit"]
    assert "--pointer=licence.schema.json#/definitions/licence" in command(unit)
    # The built-in validator follows the same reference from the flow's directory.
    (schemas.root / "node.json").write_text(json.dumps({"name": "MIT", "url": 5}))
    monkeypatch.setenv("META_INPUT", str(schemas.root / "node.json"))
    monkeypatch.setenv("META_OUTPUT", str(schemas.root / "out"))
    iteration = {"node": {"name": "MIT", "url": 5}, "path": "/licences/0"}
    arguments = [render(a, iteration) for a in command(unit)[3:]]
    assert validate_node(arguments) == 0
    report = json.loads((schemas.root / "out" / "report.json").read_text())
    assert report["errors"] == [
        {"pointer": "/licences/0/url", "message": "5 is not of type 'string'"}
    ]


def test_the_root_type_is_not_held_to_its_stripped_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example of issue 12: the node type is the root schema (`--pointer ''`).
    schema = {
        "$schema": DRAFT7,
        "type": "object",
        "required": ["name", "runs"],
        "properties": {"name": {"type": "string"}, "runs": {"$ref": "#/definitions/js"}},
        "definitions": {"js": {"type": "object", "required": ["main"], "properties": {"main": {}}}},
    }
    (tmp_path / "action.schema.json").write_text(json.dumps(schema))
    (tmp_path / "node.json").write_text(json.dumps({"name": "x"}))
    monkeypatch.setenv("META_INPUT", str(tmp_path / "node.json"))
    monkeypatch.setenv("META_OUTPUT", str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    args = ["--schema", "action.schema.json", "--pointer", "", "--children", "runs"]
    assert validate_node(args) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["errors"] == []


def test_an_overlay_gives_hints_to_an_unmodified_schema_and_its_faults_name_it(
    schemas: Schemas,
) -> None:
    document = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/kid"}}},
        "definitions": {"kid": person()},
    }
    (schemas.root / "doc.meta.yaml").write_text(
        "/definitions/kid:\n  run: {command: [echo, '{{ node.name }}']}\n"
    )
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["visit"]["cases"][1]["unit"]["run"] == {
        "command": ["echo", "{{ node.name }}"]
    }
    (schemas.root / "doc.meta.yaml").write_text(
        "/definitions/kid:\n  run: {command: []}\n/nowhere:\n  run: {command: [x]}\n"
    )
    assert schemas.faults(document) == [
        "doc.meta.yaml: /~1nowhere: '/nowhere' points at no subschema of doc.schema.json"
    ]
    (schemas.root / "doc.meta.yaml").write_text("/definitions/kid:\n  run: {command: []}\n")
    assert schemas.faults(document) == [
        "doc.meta.yaml: /~1definitions~1kid/run/command: bad x-meta: [] should be non-empty"
    ]


def test_yaml_data_reads_as_json_and_its_faults_name_the_line(tmp_path: Path) -> None:
    data = tmp_path / "ci.yml"
    data.write_text("on: push\nwhen: 2024-01-01\njobs: {build: {steps: [x]}}\n")
    assert read_json(data) == {
        "on": "push",
        "when": "2024-01-01",
        "jobs": {"build": {"steps": ["x"]}},
    }
    data.write_text("a: 1\na: 2\n")
    with pytest.raises(InputFault) as caught:
        read_json(data)
    assert str(caught.value).endswith("invalid YAML: line 2, column 1: the key 'a' appears twice")


def test_explain_says_what_was_seen_and_why_each_generator_scores(
    schemas: Schemas,
) -> None:
    document = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {
            "jobs": {"type": "object", "additionalProperties": person()},
            "env": {"type": "object", "patternProperties": {"^[A-Z]": person()}},
        },
    }
    description = read_description(schemas.write(document), flow_dir=schemas.root)
    found = explain(schemas.plugins, description)
    assert found.seen == [
        "a JSON Schema, draft-07 (from $schema)",
        "root: an object type (root)",
        "node types: 2 (root, jobs-additionalProperties)",
        "children fields: jobs",
        "maps of entries keyed by name, walked as nodes: /properties/jobs",
        "maps whose entries may be other than nodes (checked with the node holding them; on the "
        "top node, a unit per entry): /properties/env",
    ]
    assert found.chosen is not None and found.chosen.generator == "document"
    lines = "\n".join(found.lines())
    assert "document: 30.5 (chosen): a dag: the top node, and a unit per entry of env" in lines
    assert "tree: 30: a dfs walk over 1 children fields, 2 node types" in lines


def test_without_a_draft_the_schema_is_read_as_the_newest_and_says_so(schemas: Schemas) -> None:
    description = read_description(
        schemas.write({"type": "object", "properties": {"a": person()}}, "plain.json"),
        flow_dir=schemas.root,
    )
    assert explain(schemas.plugins, description).seen[0] == (
        "a JSON Schema, draft 2020-12 (no $schema: read as the newest draft)"
    )


def test_entries_are_walked_those_that_may_be_more_fan_out_and_needs_are_checked(
    schemas: Schemas,
) -> None:
    document = {
        "$schema": DRAFT7,
        "type": "object",
        "required": ["jobs"],
        "properties": {
            "jobs": {"type": "object", "additionalProperties": person(needs={"type": "array"})}
        },
    }
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"] == {"input": "data", "entries": ["jobs"], "misfits": "keep"}
    loose = json.loads(json.dumps(document))
    loose["properties"]["jobs"]["additionalProperties"]["type"] = ["object", "array"]
    jobs = schemas.flow(loose)["spec"]["root"]["units"][1]
    # A validator's fan-out: a document without jobs has none (no fault).
    assert (jobs["pattern"], jobs["over"]) == (
        "fanout",
        {"input": "data", "path": "/jobs", "misfits": "keep"},
    )
    (schemas.root / "doc.meta.yaml").write_text(
        "/properties/jobs:\n  entries: {dependsOn: needs}\n"
    )
    # The entries' dag is read from the data when the flow runs: no data is needed here.
    jobs = schemas.flow(document)["spec"]["root"]["units"][1]
    assert jobs["over"] == {
        "input": "data",
        "path": "/jobs",
        "dependsOn": "needs",
        "misfits": "keep",
    }
    (schemas.root / "doc.meta.yaml").write_text(
        "/properties/jobs:\n  entries: {dependsOn: after, each: steps}\n"
    )
    assert schemas.faults(document) == [
        "doc.meta.yaml: /~1properties~1jobs/entries/each: the entries have no array field 'steps'"
    ]
    (schemas.root / "doc.meta.yaml").write_text(
        "/properties/jobs:\n  entries: {dependsOn: after}\n"
    )
    assert schemas.faults(document) == [
        "doc.meta.yaml: /~1properties~1jobs/entries/dependsOn: the entries have no field 'after'"
    ]


def test_the_ci_workflow_sample_runs_its_jobs_in_needs_order_with_every_step(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ci"
    shutil.copytree(SAMPLE, folder)
    made = run_meta(
        "generate",
        "github-workflows.json",
        "--data",
        "ci.data.yml",
        "-o",
        "ci.flow.yaml",
        cwd=folder,
    )
    assert made.returncode == 0, made.stderr
    flow = yaml.safe_load((folder / "ci.flow.yaml").read_text())
    jobs = flow["spec"]["root"]["units"][1]
    assert jobs["over"] == {
        "input": "data",
        "path": "/jobs",
        "dependsOn": "needs",
        "misfits": "keep",
    }
    ran = run_meta("run", "ci.flow.yaml", "--workdir", "run", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    data = yaml.safe_load((folder / "ci.data.yml").read_text())
    steps = sum(len(job["steps"]) for job in data["jobs"].values())
    notes = list((folder / "run" / "store").rglob("step.json"))
    assert len(notes) == steps
    # The jobs ran in `needs` order (list -> ci -> packaging), each job's steps in order.
    report = json.loads((folder / "run" / "report.json").read_text())
    started = [u["id"] for u in sorted(report["units"], key=lambda u: u["startedAt"])]
    jobs_in_order = list(dict.fromkeys(uid.split("/")[3] for uid in started if "/jobs/" in uid))
    assert jobs_in_order == ["list", "ci", "packaging"]
    # The same flow runs another workflow: a job that waits for a job it does not name fails
    # before anything runs, at its place in the data.
    other = folder / "ci.data.yml"
    other.write_text(other.read_text().replace("needs: ci", "needs: [ci, docs]"))
    refused = run_meta("run", "ci.flow.yaml", "--workdir", "run2", cwd=folder)
    assert refused.returncode == 2
    assert "ci.data.yml: /jobs/packaging/needs/1: 'docs' names no entry" in refused.stderr
    again = run_meta(
        "generate", "github-workflows.json", "--data", "ci.data.yml", "-o", "again.yaml", cwd=folder
    )
    assert again.returncode == 0, again.stderr
    assert (folder / "again.yaml").read_bytes() == (folder / "ci.flow.yaml").read_bytes()

"""Constraints written on a children container (an array or a map of nodes) are checked by the
generated flow: every error jsonschema finds on the whole document is reported by one node of
the flow, once, at its place."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators

from meta.steps.schema_faults import deepest
from meta.steps.yamldata import load_yaml_data

from .helpers import REPO, run_meta

pytestmark = [pytest.mark.e2e]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TEAM = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
ORG = {
    "$schema": DRAFT,
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "teams": {
            "type": "array",
            "items": {"$ref": "#/$defs/team"},
            "minItems": 2,
            "maxItems": 3,
        },
        "jobs": {
            "type": "object",
            "patternProperties": {"^[a-z]+$": {"$ref": "#/$defs/team"}},
            "additionalProperties": False,
            "maxProperties": 1,
            "propertyNames": {"maxLength": 3},
        },
    },
    "$defs": {"team": TEAM},
}
BAD_ORG = {"name": "o", "teams": [{"name": "a"}], "jobs": {"BAD": {"name": "x"}, "toolong": {}}}


def expected(schema: Any, data: Any) -> Counter[str]:
    """The pointers of the errors jsonschema finds on the whole document, as the step tells
    them (at their deepest relevant place)."""
    checker = validators.validator_for(schema)(schema)
    found = (deepest(error) for error in checker.iter_errors(data))
    return Counter(_pointer(list(error.absolute_path)) for error in found)


def _pointer(parts: list[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def reported(schema_file: Path, data_file: Path) -> Counter[str]:
    """The pointers of the errors the generated flow's reports hold, one per report line."""
    folder = schema_file.parent
    made = run_meta(
        "generate", schema_file.name, "--data", data_file.name, "-o", "x.flow.yaml", cwd=folder
    )
    assert made.returncode == 0, made.stderr
    shutil.rmtree(folder / "run", ignore_errors=True)
    ran = run_meta("run", "x.flow.yaml", "--workdir", "run", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    found: Counter[str] = Counter()
    for report in (folder / "run" / "store").rglob("report.json"):
        found.update(error["pointer"] for error in json.loads(report.read_text())["errors"])
    return found


def verdicts(tmp_path: Path, schema: Any, data: Any) -> tuple[Counter[str], Counter[str]]:
    schema_file = tmp_path / "x.schema.json"
    schema_file.write_text(json.dumps(schema), encoding="utf-8")
    data_file = tmp_path / "x.data.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    return reported(schema_file, data_file), expected(schema, data)


def test_a_walk_checks_the_own_keywords_of_its_arrays_and_maps(tmp_path: Path) -> None:
    found, wanted = verdicts(tmp_path, ORG, BAD_ORG)
    assert wanted == Counter({"/jobs": 3, "/jobs/toolong": 1, "/teams": 1})
    assert found == wanted


@pytest.mark.parametrize(
    "teams",
    [[{"name": "a"}, {"name": "a"}], [{"name": "a"}, 7, 7, {"name": 8}]],
    ids=["nodes", "misfits"],
)
def test_values_the_containers_own_keywords_need_are_read_from_the_data(
    tmp_path: Path, teams: list[Any]
) -> None:
    schema = json.loads(json.dumps(ORG))
    schema["properties"]["teams"]["uniqueItems"] = True
    found, wanted = verdicts(tmp_path, schema, {"name": "o", "teams": teams})
    assert wanted["/teams"]
    assert found == wanted


def test_a_container_of_the_wrong_type_is_reported(tmp_path: Path) -> None:
    found, wanted = verdicts(tmp_path, ORG, {"name": "o", "teams": None})
    assert wanted == Counter({"/teams": 1})
    assert found == wanted


def test_a_fanned_out_map_is_reported_once(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "kids": {"type": "array", "items": {"type": "object", "properties": {"n": {}}}},
            "vars": {
                "type": "object",
                "additionalProperties": {"type": ["string", "array"]},
                "maxProperties": 1,
            },
        },
    }
    data = {"kids": [{"n": 1}], "vars": {"a": 5, "b": "x"}}
    found, wanted = verdicts(tmp_path, schema, data)
    assert wanted == Counter({"/vars": 1, "/vars/a": 1})
    assert found == wanted


def test_the_collection_checks_the_array_itself(tmp_path: Path) -> None:
    schema = {
        "type": "array",
        "minItems": 3,
        "uniqueItems": True,
        "items": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "x-meta": {"gather": True},
    }
    found, wanted = verdicts(tmp_path, schema, [{"a": 1}, {"a": 1}])
    assert wanted == Counter({"": 2})
    assert found == wanted


@pytest.mark.parametrize(
    "data", [[{"a": 1}, {"a": 1}], {"a": {"a": 1}}], ids=["too-short-not-unique", "an-object"]
)
def test_the_collection_checks_the_array_unasked(tmp_path: Path, data: Any) -> None:
    schema = {
        "type": "array",
        "minItems": 3,
        "uniqueItems": True,
        "items": {"type": "object", "properties": {"a": {"type": "integer"}}},
    }
    found, wanted = verdicts(tmp_path, schema, data)
    assert wanted == Counter({"": 2 if isinstance(data, list) else 1})
    assert found == wanted


KEYED = {
    "$schema": DRAFT,
    "type": "object",
    "properties": {
        "m": {
            "type": "object",
            "patternProperties": {"^a": {"$ref": "#/$defs/A"}, "b$": {"$ref": "#/$defs/B"}},
            "additionalProperties": False,
        }
    },
    "$defs": {
        "A": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
        "B": {"type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]},
    },
}


def test_a_walked_entry_is_held_to_every_schema_its_key_selects(tmp_path: Path) -> None:
    data = {"m": {"a1": {"y": 1}, "zb": {"x": "s"}, "ab": {"x": "s"}, "ok": {"x": "s"}}}
    found, wanted = verdicts(tmp_path, KEYED, data)
    assert wanted == Counter({"/m/a1": 1, "/m/ab": 1, "/m/zb": 1, "/m": 1})
    assert found == wanted


def test_an_entry_is_held_to_the_patterns_its_map_gets_through_all_of_and_refs(
    tmp_path: Path,
) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["kids"],
        "properties": {"kids": {"$ref": "#/definitions/Kids2"}},
        "definitions": {
            "Kids2": {
                "allOf": [{"$ref": "#/definitions/Kids"}],
                "type": "object",
                "patternProperties": {"^z": {"type": "array"}},
            },
            "Kids": {
                "type": "object",
                "patternProperties": {
                    "^a": {"$ref": "#/definitions/A"},
                    "b$": {"$ref": "#/definitions/B"},
                },
            },
            "A": KEYED["$defs"]["A"],
            "B": KEYED["$defs"]["B"],
        },
    }
    data = {"kids": {"ab": {"x": "s"}, "a1": {"x": "s"}, "zb": [1], "zz": [2]}}
    found, wanted = verdicts(tmp_path, schema, data)
    assert wanted == Counter({"/kids/ab": 1, "/kids/zb": 1})
    assert found == wanted


def test_an_entry_of_a_field_two_maps_share_is_held_to_the_map_that_takes_its_key(
    tmp_path: Path,
) -> None:
    kids = {"$ref": "#/$defs/Kids"}
    schema = json.loads(json.dumps(KEYED))
    schema["$defs"]["Kids"] = schema["properties"]["m"]
    schema["properties"] = {"kids": kids, "q": {"$ref": "#/$defs/Q"}}
    schema["$defs"]["Q"] = {
        "type": "object",
        "properties": {"kids": {"type": "object", "additionalProperties": {"$ref": "#/$defs/C"}}},
    }
    schema["$defs"]["C"] = {
        "type": "object",
        "properties": {"z": {"type": "string"}, "kids": kids},
        "required": ["z"],
    }
    for name in ("A", "B"):
        schema["$defs"][name]["properties"]["kids"] = kids
    data = {"kids": {"ab": {"x": "s"}, "a1": {"x": "s"}}, "q": {"kids": {"c1": {"x": "s"}}}}
    found, wanted = verdicts(tmp_path, schema, data)
    assert wanted == Counter({"/kids/ab": 1, "/q/kids/c1": 1})
    assert found == wanted


PATHS = {
    "$schema": DRAFT,
    "type": "object",
    "required": ["paths"],
    "properties": {
        "title": {"type": "string"},
        "paths": {
            "type": "object",
            "patternProperties": {"^x-": {}, "^/": {"$ref": "#/$defs/item"}},
            "additionalProperties": False,
        },
    },
    "$defs": {
        "item": {
            "type": "object",
            "properties": {"get": {"type": "object", "required": ["responses"]}},
        }
    },
}


@pytest.mark.parametrize(
    "paths",
    [
        {"/pets": {"get": {"responses": {}}}, "x-top": 5},
        {"/pets": {"get": {}}, "/a": "oops", "x-top": 5},
    ],
    ids=["valid-extension", "broken-items"],
)
def test_a_fanned_out_entry_is_held_to_what_its_key_selects(
    tmp_path: Path, paths: dict[str, Any]
) -> None:
    found, wanted = verdicts(tmp_path, PATHS, {"title": "t", "paths": paths})
    assert found == wanted
    assert sum(wanted.values()) == (0 if len(paths) == 2 else 2)


BROKEN_JOBS = {
    "1 ci!": {"runs-on": "ubuntu-latest", "steps": [{"run": "true"}]},
    "odd": {"runs-on": 5, "bogus": True, "steps": [{"run": "make"}]},
    "empty": {"runs-on": "ubuntu-latest", "steps": []},
}


@pytest.mark.parametrize("job", [None, *BROKEN_JOBS])
def test_the_shipped_workflow_schema_agrees_with_jsonschema(
    tmp_path: Path, job: str | None
) -> None:
    """Each job is checked, whether its steps run as units of their own (`each`) or not."""
    sample = REPO / "samples" / "ci-workflow"
    for name in ("github-workflows.json", "github-workflows.meta.yaml", "step.py"):
        shutil.copy(sample / name, tmp_path / name)
    data = load_yaml_data((sample / "ci.data.yml").read_text(encoding="utf-8"))
    if job is not None:
        data["jobs"][job] = BROKEN_JOBS[job]
    data_file = tmp_path / "ci.data.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    schema = json.loads((sample / "github-workflows.json").read_text(encoding="utf-8"))
    wanted = expected(schema, data)
    assert bool(wanted) == (job is not None)
    assert reported(tmp_path / "github-workflows.json", data_file) == wanted


@pytest.mark.parametrize(
    "data",
    [
        {"name": "o", "teams": "none yet"},
        {"name": "o", "teams": [{"name": "a"}, 7, {"name": 8}]},
        {"name": "o", "teams": [{"name": "a"}, {"name": "b"}], "jobs": {"ab": 5, "cd": {}}},
        "an org",
        [{"name": "o"}],
        None,
        5,
        "teams",
        ["teams"],
    ],
    ids=[
        "a-string-for-an-array",
        "a-number-among-nodes",
        "a-number-among-entries",
        "a-string-root",
        "an-array-root",
        "a-null-root",
        "a-number-root",
        "a-root-naming-a-field",
        "a-root-listing-a-field",
    ],
)
def test_data_that_is_not_a_tree_of_nodes_is_reported_not_refused(
    tmp_path: Path, data: Any
) -> None:
    found, wanted = verdicts(tmp_path, ORG, data)
    assert wanted
    assert found == wanted


COMPANY = {
    "$schema": DRAFT,
    "$ref": "#/$defs/company",
    "$defs": {
        kind: {
            "type": "object",
            "required": ["kind", "name"],
            "properties": {"kind": {"const": kind}, "name": {"type": "string"}, **holds},
        }
        for kind, holds in (
            ("company", {"teams": {"type": "array", "items": {"$ref": "#/$defs/team"}}}),
            ("team", {"members": {"type": "array", "items": {"$ref": "#/$defs/person"}}}),
            ("person", {}),
        )
    },
}


@pytest.mark.parametrize(
    "person",
    [{"name": "p"}, {"kind": "persn", "name": "p"}, {"kind": "team", "name": "p"}],
    ids=["no-kind", "an-unknown-kind", "another-types-kind"],
)
def test_a_node_no_type_matches_is_checked_as_the_type_of_its_place(
    tmp_path: Path, person: Any
) -> None:
    team = {"kind": "team", "name": "t", "members": [{"kind": "person", "name": "q"}, person]}
    found, wanted = verdicts(tmp_path, COMPANY, {"kind": "company", "name": "c", "teams": [team]})
    assert wanted == Counter({"/teams/0/members/1": 1}) or wanted == Counter(
        {"/teams/0/members/1/kind": 1}
    )
    assert found == wanted


def test_a_node_where_the_schema_holds_none_is_reported_by_its_parent(tmp_path: Path) -> None:
    """One object where an array of nodes belongs: the walk takes it as a child (a field may
    hold one node), no place of the schema holds it, and its parent reports the field's type.
    What is below it is still checked as its field's type (jsonschema stops at the type)."""
    data = {"name": "o", "teams": {"name": "x", "teams": [{"name": 5}]}}
    found, wanted = verdicts(tmp_path, ORG, data)
    assert wanted == Counter({"/teams": 1})
    assert found == wanted + Counter({"/teams/teams/0/name": 1})


@pytest.mark.parametrize("other", [{"n": 1}, {"n": 1, "vars": "x"}], ids=["no-map", "a-string"])
def test_a_document_flow_made_for_one_document_checks_another_without_the_map(
    tmp_path: Path, other: Any
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "vars": {"type": "object", "additionalProperties": {"type": ["string", "array"]}},
        },
    }
    (tmp_path / "x.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    (tmp_path / "x.data.json").write_text(json.dumps({"n": 1, "vars": {"a": "b"}}))
    made = run_meta(
        "generate", "x.schema.json", "--data", "x.data.json", "-o", "x.flow.yaml", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / "x.data.json").write_text(json.dumps(other))
    ran = run_meta("run", "x.flow.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    found: Counter[str] = Counter()
    for report in (tmp_path / "run" / "store").rglob("report.json"):
        found.update(error["pointer"] for error in json.loads(report.read_text())["errors"])
    assert found == expected(schema, other)
    # One verdict on the whole document is the flow's result.
    result = json.loads((tmp_path / "run" / "report.json").read_text())["result"]
    assert (result["valid"], result["invalid"]) == (not found, int(bool(found)))


def _closed(*required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {name: {"type": "string"} for name in required},
        "additionalProperties": False,
    }


def test_a_node_right_for_another_place_of_its_field_name_is_reported(tmp_path: Path) -> None:
    """CycloneDX's `data`: a component's and a service's are of different schemas; a service's
    data flow in a component is wrong there, though right under a service."""
    schema = {
        "type": "object",
        "properties": {
            "components": {"type": "array", "items": {"$ref": "#/$defs/component"}},
            "services": {"type": "array", "items": {"$ref": "#/$defs/service"}},
        },
        "$defs": {
            "component": {
                "type": "object",
                "properties": {"data": {"type": "array", "items": _closed("type")}},
            },
            "service": {
                "type": "object",
                "properties": {"data": {"type": "array", "items": _closed("flow")}},
            },
        },
    }
    data = {
        "components": [{"data": [{"flow": "inbound"}]}],
        "services": [{"data": [{"flow": "x"}]}],
    }
    found, wanted = verdicts(tmp_path, schema, data)
    assert wanted == Counter({"/components/0/data/0": 2})
    assert found == wanted


def test_a_ref_to_a_file_by_its_relative_id_resolves(tmp_path: Path) -> None:
    """As cfn-lint's IAM policy schemas are written: `$id: identity`, `$ref: policy#/...` to
    the file beside it whose `$id` is `policy`."""
    policy = {"$id": "policy", "definitions": {"Effect": {"enum": ["Allow", "Deny"]}}}
    (tmp_path / "policy.json").write_text(json.dumps(policy), encoding="utf-8")
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "identity",
        "type": "object",
        "properties": {"Effect": {"$ref": "policy#/definitions/Effect"}},
    }
    schema_file = tmp_path / "x.schema.json"
    schema_file.write_text(json.dumps(schema), encoding="utf-8")
    data_file = tmp_path / "x.data.json"
    data_file.write_text(json.dumps({"Effect": "Alow"}), encoding="utf-8")
    assert reported(schema_file, data_file) == Counter({"/Effect": 1})


WORKFLOW = {
    "$schema": DRAFT,
    "type": "object",
    "required": ["jobs"],
    "properties": {
        "jobs": {
            "type": "object",
            "additionalProperties": {"$ref": "#/$defs/job"},
            "x-meta": {"entries": {"dependsOn": "needs", "each": "steps"}},
        }
    },
    "$defs": {
        "job": {
            "type": "object",
            "required": ["steps"],
            "additionalProperties": False,
            "properties": {
                "needs": {"type": "array", "items": {"type": "string"}},
                "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            },
        },
        "step": {
            "type": "object",
            "required": ["run"],
            "properties": {"run": {"type": "string"}},
            "oneOf": [{"required": ["run"]}, {"required": ["uses"]}],
        },
    },
}


@pytest.mark.parametrize(
    "job",
    [
        None,
        True,
        "steps",
        {"steps": "make"},
        {"steps": None},
        {"steps": {"run": "make", "with": {"a": 1}}},
        {"steps": [{"run": "make"}], "needs": 5},
        {"steps": [5]},
    ],
    ids=[
        "null",
        "true",
        "a-string",
        "steps-a-string",
        "steps-null",
        "steps-an-object",
        "needs-a-number",
        "a-step-a-number",
    ],
)
def test_an_entry_whose_items_run_as_units_is_checked_whatever_it_holds(
    tmp_path: Path, job: Any
) -> None:
    data = {"jobs": {"build": {"steps": [{"run": "make"}]}, "ci": job}}
    found, wanted = verdicts(tmp_path, WORKFLOW, data)
    assert wanted
    assert found == wanted


def test_a_stream_that_only_validates_gives_one_verdict_on_every_record(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["v"],
        "properties": {"v": {"type": "integer", "minimum": 0}},
        "x-meta": {"stream": True, "chunk": 2},
    }
    (tmp_path / "x.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    records = [{"v": 1}, {"v": -1}, {"v": "x"}, {"v": 3}, {"w": 1}]
    (tmp_path / "x.data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    made = run_meta("generate", "x.schema.json", "-o", "x.flow.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ran = run_meta("run", "x.flow.yaml", "--workdir", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "run" / "report.json").read_text())["result"]
    assert result == {"valid": False, "nodes": 5, "invalid": 3}

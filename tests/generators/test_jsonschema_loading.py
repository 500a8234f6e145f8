"""Loading a JSON Schema description: the metaschema, local-only `$ref`s, and x-meta checks.
Each bad input is a user error naming the file and the JSON pointer of the fault."""

from __future__ import annotations

import json
import socket
import urllib.request
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from meta_generators.schema_model import x_meta_schema

from meta.errors import UserError
from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import load_plugins
from meta.steps.validate_node import main as validate_node
from tests.generators.helpers import Schemas, run_meta, schema

HIERARCHY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
}


def test_an_invalid_json_schema_names_each_fault(schemas: Schemas) -> None:
    faults = schemas.faults(
        schema(type="objekt", properties={"a": {"minLength": -1}}),
    )
    assert faults == [
        "doc.schema.json: /properties/a/minLength: not a valid JSON Schema: "
        "-1 is less than the minimum of 0",
        "doc.schema.json: /type: not a valid JSON Schema: "
        "'objekt' is not valid under any of the given schemas",
    ]


def test_an_unresolvable_ref_names_its_pointer(schemas: Schemas) -> None:
    faults = schemas.faults(
        schema(
            type="object",
            properties={"a": {"$ref": "#/$defs/missing"}, "b": {"$ref": "#nowhere"}},
        )
    )
    assert faults == [
        "doc.schema.json: /properties/a/$ref: $ref '#/$defs/missing' does not resolve: "
        "nothing at '/$defs/missing' in this file",
        "doc.schema.json: /properties/b/$ref: $ref '#nowhere' does not resolve: "
        "no $anchor 'nowhere' in this file",
    ]


def test_a_cycle_of_refs_is_a_fault_at_its_first_ref(schemas: Schemas) -> None:
    cyclic = schema(
        properties={"x": {"$ref": "#/$defs/a"}},
        **{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}},
    )
    assert schemas.faults(cyclic) == [
        "doc.schema.json: /$defs/a/$ref: a $ref cycle: /$defs/a -> /$defs/b -> /$defs/a: each "
        "names the next, so checking a value follows them for ever"
    ]
    assert schemas.faults(schema(**{"$ref": "#"})) == [
        "doc.schema.json: /$ref: a $ref cycle: $ref names the schema it is written in, so "
        "checking a value follows it for ever"
    ]


def test_a_cycle_through_schemas_applied_in_place_is_a_fault(schemas: Schemas) -> None:
    ring = schema(
        properties={"x": {"$ref": "#/$defs/a"}},
        **{
            "$defs": {
                "a": {"allOf": [{"$ref": "#/$defs/b"}]},
                "b": {"if": {"type": "object"}, "then": {"$ref": "#/$defs/a"}},
            }
        },
    )
    assert schemas.faults(ring) == [
        "doc.schema.json: /$defs/a/allOf/0/$ref: a $ref cycle: /$defs/a/allOf/0 -> /$defs/b -> "
        "/$defs/b/then -> /$defs/a -> /$defs/a/allOf/0: each names or applies the next, so "
        "checking a value follows them for ever"
    ]
    tree = schema(
        properties={"x": {"$ref": "#/$defs/n"}},
        **{"$defs": {"n": {"anyOf": [{"type": "string"}, {"items": {"$ref": "#/$defs/n"}}]}}},
    )
    assert schemas.flow(tree)["kind"] == "MetaFlow"


def test_a_type_that_holds_itself_below_a_property_is_no_cycle(schemas: Schemas) -> None:
    assert schemas.flow(HIERARCHY)["spec"]["root"]["pattern"] == "dfs"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to open a connection is recorded and refused."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise AssertionError("no network look-ups of $refs")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def test_a_remote_ref_is_an_error_and_never_fetched(
    schemas: Schemas, no_network: list[str]
) -> None:
    faults = schemas.faults(
        schema(
            type="object",
            properties={
                "web": {"$ref": "https://example.com/schemas/a.json#/$defs/x"},
                "file": {"$ref": "other.schema.json#/$defs/y"},
            },
        )
    )
    assert faults == [
        "doc.schema.json: /properties/web/$ref: $ref 'https://example.com/schemas/a.json#/$defs/x'"
        " is not local (it names https://example.com/schemas/a.json): only files under the "
        "schema's folder are read (by path, or by the $id written in them), never fetched; "
        "meta generate --schema-root DIR reads files anywhere under DIR",
        "doc.schema.json: /properties/file/$ref: $ref 'other.schema.json#/$defs/y' names "
        "other.schema.json: no such file",
    ]
    assert no_network == []


def test_refs_resolve_against_the_documents_own_id(schemas: Schemas) -> None:
    own = "https://example.com/org.schema.json"
    document = schema(**{"$id": own}, **HIERARCHY)
    document["properties"] = {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": own}},
        "lead": {"$ref": f"{own}#/$defs/person"},
    }
    document["$defs"] = {
        "person": {"type": "object", "required": ["email"], "properties": {"email": {}}}
    }
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["over"] == {
        "input": "data",
        "children": ["children", "lead"],
        "misfits": "keep",
    }


def test_an_unknown_x_meta_key_is_named_with_its_pointer(schemas: Schemas) -> None:
    document = schema(
        **HIERARCHY,
        **{"x-meta": {"patern": "dfs"}, "$defs": {"a": {"x-meta": {"command": ["x"]}}}},
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /x-meta/patern: unknown x-meta key 'patern' (known on the root: "
        "pattern, order, scope, maxActive, name, stream, chunk, rounds, ring, gather, run)",
        "doc.schema.json: /$defs/a/x-meta/command: unknown x-meta key 'command' "
        "(known here: run, dependsOn, entries)",
    ]


@pytest.mark.parametrize(
    ("x_meta", "fault"),
    [
        ({"maxActive": "two"}, "/x-meta/maxActive: bad x-meta: 'two' is not of type 'integer'"),
        ({"maxActive": 0}, "/x-meta/maxActive: bad x-meta: 0 is less than the minimum of 1"),
        ({"pattern": "zigzag"}, "/x-meta/pattern: bad x-meta: 'zigzag' is not one of"),
        ({"order": "in"}, "/x-meta/order: bad x-meta: 'in' is not one of ['pre', 'post']"),
        ({"name": "Not A Name"}, "/x-meta/name: bad x-meta: 'Not A Name' does not match"),
        ({"run": {"command": "echo hi"}}, "/x-meta/run/command: bad x-meta: 'echo hi' is not"),
        ({"ring": [{"run": {"command": ["x"]}}]}, "/x-meta/ring/0: bad x-meta: 'name' is a"),
        ({"gather": "yes"}, "/x-meta/gather: bad x-meta: 'yes' is not valid under any"),
    ],
)
def test_an_x_meta_of_the_wrong_type_is_named_with_its_pointer(
    schemas: Schemas, x_meta: dict[str, Any], fault: str
) -> None:
    faults = schemas.faults(schema(**HIERARCHY, **{"x-meta": x_meta}))
    assert len(faults) == 1
    assert faults[0].startswith(f"doc.schema.json: {fault}")


def test_x_meta_on_a_node_type_is_checked_too(schemas: Schemas) -> None:
    document = schema(
        **HIERARCHY,
        **{"$defs": {"leaf": {"type": "object", "x-meta": {"run": {"command": []}}}}},
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /$defs/leaf/x-meta/run/command: bad x-meta: [] should be non-empty"
    ]


def test_depends_on_belongs_on_a_defs_entry(schemas: Schemas) -> None:
    document = schema(
        type="object",
        properties={"a": {"type": "string", "x-meta": {"dependsOn": ["b"]}}},
    )
    assert schemas.faults(document) == [
        "doc.schema.json: /properties/a/x-meta/dependsOn: x-meta.dependsOn belongs on a $defs "
        "entry (it names other $defs entries)"
    ]


def test_a_property_named_x_meta_is_data_not_an_annotation(schemas: Schemas) -> None:
    document = schema(**HIERARCHY)
    document["properties"] = {**HIERARCHY["properties"], "x-meta": {"type": "string"}}
    flow = schemas.flow(document)
    assert flow["spec"]["root"]["pattern"] == "dfs"


@pytest.mark.parametrize("draft", ["draft-04", "draft-06", "draft-07"])
def test_an_older_draft_is_read_with_its_own_rules(schemas: Schemas, draft: str) -> None:
    document = {"$schema": f"http://json-schema.org/{draft}/schema#", **HIERARCHY}
    assert schemas.scores(document)["tree"] == 30.0


DRAFT_3_TYPES = {
    "type": "object",
    "properties": {"tags": {"type": ["array", {"type": "string"}], "items": {"type": "string"}}},
}


def test_draft_3_is_refused_naming_its_schema(tmp_path: Path) -> None:
    document = {"$schema": "http://json-schema.org/draft-03/schema#", **DRAFT_3_TYPES}
    (tmp_path / "d3.json").write_text(json.dumps(document))
    metaschema = files("jsonschema_specifications") / "schemas" / "draft3" / "metaschema.json"
    (tmp_path / "meta3.json").write_text(metaschema.read_text(encoding="utf-8"))
    for name in ("d3.json", "meta3.json"):
        result = run_meta("generate", name, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"{name}: /$schema: 'http://json-schema.org/draft-03/schema#' names draft 3, which "
            "is not read: the generators read drafts 04 to 2020-12"
        ]


def test_a_type_list_holding_a_schema_allows_more_than_its_names(schemas: Schemas) -> None:
    # Draft 3's form, in a file a $ref reaches (the metaschema checks the schema's own file):
    # `tags` may be an array or a string, so it is no children field of the walk.
    schemas.write({"definitions": DRAFT_3_TYPES}, "other.json")
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"$ref": "other.json#/definitions/properties/tags"},
            "kids": {"type": "array", "items": {"$ref": "#"}},
        },
    }
    flow = schemas.flow(schema(**tree))
    assert flow["spec"]["root"]["over"]["children"] == ["kids"]


def test_an_unknown_dialect_is_not_claimed(schemas: Schemas) -> None:
    document = {"$schema": "https://example.com/my-dialect", **HIERARCHY}
    assert set(schemas.scores(document).values()) == {0.0}


def test_a_schema_without_dollar_schema_is_claimed_by_its_name_or_keywords(
    schemas: Schemas,
) -> None:
    assert schemas.scores(dict(HIERARCHY))["tree"] > 0
    assert schemas.scores(dict(HIERARCHY), name="plain.json")["tree"] > 0
    data = {"kind": "Thing", "name": "x"}
    assert set(schemas.scores(data, name="plain.json").values()) == {0.0}


def test_a_boolean_schema_is_said_to_hold_nothing_to_make_a_flow_of(tmp_path: Path) -> None:
    (tmp_path / "t.schema.json").write_text("true")
    result = run_meta("generate", "t.schema.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "tree: the document is true, not an object: nothing to make a flow of" in result.stderr
    assert "not named *.schema.json" not in result.stderr


def test_the_cli_prints_one_line_per_fault_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.schema.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",'
        ' "properties": {"a": {"$ref": "https://example.com/a.json"}},'
        ' "x-meta": {"maxActive": -1}}'
    )
    result = run_meta("generate", "bad.schema.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "bad.schema.json: /properties/a/$ref: $ref 'https://example.com/a.json' is not local: "
        "only files under the schema's folder are read (by path, or by the $id written in "
        "them), never fetched; meta generate --schema-root DIR reads files anywhere under DIR"
    ]


def nested(levels: int, keyword: str) -> dict[str, Any]:
    """A schema whose subschemas nest `levels` deep under `keyword`, each one level down
    (`items`) or two (`properties`, by the name `c`)."""
    node: dict[str, Any] = {"type": "object"}
    for _ in range(levels):
        node = {"items": node} if keyword == "items" else {"properties": {"c": node}}
    return node


@pytest.mark.parametrize(
    ("draft", "keyword", "levels"),
    [
        ("https://json-schema.org/draft/2020-12/schema", "properties", 126),
        # The deepest check jsonschema makes of a level: a chain of items, in draft 2019-09.
        ("https://json-schema.org/draft/2019-09/schema", "items", 253),
        ("http://json-schema.org/draft-07/schema#", "items", 253),
    ],
)
def test_a_schema_nested_as_deep_as_a_document_may_be_generates(
    schemas: Schemas, draft: str, keyword: str, levels: int
) -> None:
    document = {"$schema": draft, "type": "object", "properties": {"x": nested(levels, keyword)}}
    assert schemas.flow(document)["kind"] == "MetaFlow"


def test_a_schema_nested_too_deep_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    """100 levels of properties (201 of the document) generate; past the 256 levels any
    document may nest, the fault names the place; 5,000 levels cannot even be read."""
    for name, levels in (("d100", 100), ("d200", 200)):
        (tmp_path / f"{name}.schema.json").write_text(json.dumps(nested(levels, "properties")))
    (tmp_path / "d5000.schema.json").write_text('{"items": ' * 5000 + "{}" + "}" * 5000)

    ok = run_meta("generate", "d100.schema.json", "-o", "d100.flow.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    too_deep = run_meta("generate", "d200.schema.json", cwd=tmp_path)
    assert (too_deep.returncode, too_deep.stdout) == (2, "")
    assert too_deep.stderr == (
        f"d200.schema.json: {'/properties/c' * 128}: nested more than 256 levels deep\n"
    )
    unreadable = run_meta("generate", "d5000.schema.json", cwd=tmp_path)
    assert (unreadable.returncode, unreadable.stdout) == (2, "")
    assert unreadable.stderr.startswith("d5000.schema.json: /: invalid JSON: nested more than")
    assert "Traceback" not in unreadable.stderr


def test_the_x_meta_vocabulary_is_a_draft_2020_12_schema() -> None:
    from jsonschema import Draft202012Validator

    document = x_meta_schema()
    Draft202012Validator.check_schema(document)
    assert set(document["$defs"]["root"]["properties"]) >= {
        "pattern",
        "order",
        "scope",
        "maxActive",
        "name",
        "gather",
        "chunk",
        "rounds",
        "ring",
        "stream",
    }
    assert set(document["$defs"]["node"]["properties"]) == {"run", "dependsOn", "entries"}


def _spec(root: Path) -> Path:
    """A schema split over a folder tree as its standard lays it out: `spec/item/item.json`
    refers to `../common/common.json` (a folder above its own), by its https `$id` too."""
    common = root / "spec" / "common" / "common.json"
    common.parent.mkdir(parents=True)
    common.write_text(
        json.dumps(
            {"$schema": DRAFT7, "definitions": {"link": {"type": "object", **PERSON}}},
        )
    )
    item = root / "spec" / "item" / "item.json"
    item.parent.mkdir()
    item.write_text(
        json.dumps(
            {
                "$schema": DRAFT7,
                "$id": "https://example.org/spec/item/item.json",
                "type": "object",
                "properties": {
                    "links": {
                        "type": "array",
                        "items": {"$ref": "../common/common.json#/definitions/link"},
                    }
                },
            }
        )
    )
    return item


DRAFT7 = "http://json-schema.org/draft-07/schema#"
PERSON: dict[str, Any] = {"required": ["href"], "properties": {"href": {"type": "string"}}}


def _generate(path: Path, root: Path | None) -> dict[str, Any]:
    description = read_description(path, flow_dir=path.parent, schema_root=root)
    flow_path = path.parent / "doc.flow.yaml"
    return generate(load_plugins(autoload=False), description, flow_path=flow_path).document


def _refusal(path: Path, root: Path | None) -> str:
    with pytest.raises(UserError) as caught:
        _generate(path, root)
    (fault,) = {fault.reason for fault in caught.value.faults}
    return fault


def test_refs_above_the_schemas_folder_are_read_under_the_root_the_user_names(
    tmp_path: Path, no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    item = _spec(tmp_path)
    assert _refusal(item, None) == (
        "$ref '../common/common.json#/definitions/link' is not local (it names "
        "https://example.org/spec/common/common.json): only files under the schema's folder "
        "are read (by path, or by the $id written in them), never fetched; meta generate "
        "--schema-root DIR reads files anywhere under DIR"
    )
    flow = _generate(item, tmp_path / "spec")
    check = flow["spec"]["root"]["visit"]["cases"][1]["unit"]["run"]["command"]
    assert check[3:6] == [
        "--schema=item.json",
        "--schema-root=..",
        "--pointer=../common/common.json#/definitions/link",
    ]
    # The built-in validator reads the same file, from the flow's directory.
    (tmp_path / "node.json").write_text(json.dumps({"href": 5}))
    monkeypatch.chdir(item.parent)
    monkeypatch.setenv("META_INPUT", str(tmp_path / "node.json"))
    monkeypatch.setenv("META_OUTPUT", str(tmp_path / "out"))
    assert validate_node([*check[3:6], "--path=/links/0"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["errors"] == [
        {"pointer": "/links/0/href", "message": "5 is not of type 'string'"}
    ]
    assert no_network == []


def test_nothing_is_read_outside_the_root_through_dots_or_links(
    tmp_path: Path, no_network: list[str]
) -> None:
    item = _spec(tmp_path / "inside")
    plain = item.parent / "deeper" / "plain.json"
    plain.parent.mkdir()
    ref = "../../common/common.json#/definitions/link"
    plain.write_text(
        json.dumps({"$schema": DRAFT7, "type": "object", "properties": {"a": {"$ref": ref}}})
    )
    # `..` beyond the root (the item's folder; common is above it).
    above = (tmp_path / "inside" / "spec" / "common" / "common.json").as_uri()
    assert _refusal(plain, item.parent).startswith(
        f"$ref '{ref}' is not local (it names {above}): only files under {item.parent}/ "
        "(--schema-root) are read"
    )
    # A link under the root to a file outside it.
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps({"definitions": {"link": {"type": "object", **PERSON}}}))
    common = tmp_path / "inside" / "spec" / "common" / "common.json"
    common.unlink()
    common.symlink_to(outside)
    assert _refusal(plain, tmp_path / "inside") == (
        f"$ref '{ref}' (it names {common.as_uri()}) is a link to a file outside "
        f"{tmp_path / 'inside'}/ (--schema-root)"
    )
    assert _refusal(plain, tmp_path / "elsewhere") == (
        f"the schema is not under --schema-root {tmp_path / 'elsewhere'}"
    )
    assert no_network == []


def test_the_cli_takes_the_root_as_schema_root(tmp_path: Path) -> None:
    item = _spec(tmp_path)
    refused = run_meta("generate", "item.json", cwd=item.parent)
    assert refused.returncode == 2
    assert "meta generate --schema-root DIR reads files anywhere under DIR" in refused.stderr
    made = run_meta("generate", "item.json", "--schema-root=..", "-o", "f.yaml", cwd=item.parent)
    assert made.returncode == 0, made.stderr
    assert "--schema-root" in (item.parent / "f.yaml").read_text()


def test_a_root_that_refers_to_a_metaschema_beside_its_own_keywords_is_read(
    schemas: Schemas,
) -> None:
    """How a custom metaschema is written: its `$ref` adds the draft's rules, and its own
    keywords stay the node's."""
    extended = schema(
        type="object",
        properties={"a": {"type": "string"}},
        **{"$ref": "https://json-schema.org/draft/2020-12/schema"},
    )
    assert schemas.flow(extended)["kind"] == "MetaFlow"


def test_another_vocabularys_schema_says_its_dialect_is_unknown(tmp_path: Path) -> None:
    oas = {"$schema": "https://spec.openapis.org/oas/3.1/dialect/base", "type": "object"}
    (tmp_path / "oas.schema.json").write_text(json.dumps({**oas, "properties": {}}))
    (tmp_path / "plain.json").write_text(json.dumps({**oas, "x": 1}))
    named = run_meta("generate", "oas.schema.json", "--explain", cwd=tmp_path)
    assert "tree: 0: unknown $schema" in named.stdout + named.stderr
    plain = run_meta("generate", "plain.json", "--explain", cwd=tmp_path)
    assert (
        "tree: 0: not a JSON Schema (its $schema 'https://spec.openapis.org/oas/3.1/dialect/base'"
        " is no draft, not named *.schema.json, no schema keywords at the top)"
    ) in plain.stdout + plain.stderr

"""The corpus of real-world schemas and documents (tests/generators/corpus/, see its README):
every schema becomes a flow that validates, or a refusal that says why; at least 90% of those
that describe objects become flows; every document's flow runs with the local runtime, visits
every node of the document (counted here, from the data), and its reports agree with jsonschema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meta.errors import UserError, lookup, pointer
from meta.flow.files import parse_yaml_data
from meta.generate.pipeline import Generated, generate, read_description
from meta.generate.plugins import Plugins, load_plugins
from meta.steps import schema_faults
from meta.steps.validate_node import dialect_of, is_yaml, local_registry
from meta.steps.walked import holds_nodes
from tests.generators.helpers import run_meta

CORPUS = Path(__file__).parent / "corpus"
MANIFEST: list[dict[str, Any]] = (
    yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))
    if (CORPUS / "manifest.yaml").is_file()
    else []
)
DOCUMENTS = [(entry, document) for entry in MANIFEST for document in entry.get("documents", [])]

REFUSED = {
    # A $ref to a file its package does not ship beside it.
    "drone-ci": "kubernetes-definitions.json: no such file",
    # $refs to ../../item-spec/json-schema/common.json, which pystac ships flattened into the
    # schema's own folder with a misspelt $id: under no path or $id the ref names.
    "stac-collection": "item-spec/json-schema/common.json: no such file",
    # Kwalify, not JSON Schema.
    "citation-file-format-1.1.0-yaml": "not a JSON Schema",
}
"""The schemas that are refused, with what the refusal says."""

pytestmark = pytest.mark.skipif(not MANIFEST, reason="the corpus is not there")


@pytest.fixture(scope="module")
def builtins() -> Plugins:
    return load_plugins(autoload=False)


def schema_root(entry: dict[str, Any]) -> Path:
    """The folder a corpus schema's $refs read files under: its own folder in the corpus
    (`schemas/<name>/`, laid out as in its package: stac-item's geojson/ sits above the schema's
    stac-spec/v1.1.0/)."""
    return CORPUS.joinpath(*Path(entry["schema"]).parts[:2])


def _generate(
    plugins: Plugins, entry: dict[str, Any], folder: Path, data: Path | None
) -> Generated:
    description = read_description(
        CORPUS / entry["schema"], data=data, flow_dir=folder, schema_root=schema_root(entry)
    )
    return generate(plugins, description, flow_path=folder / "corpus.flow.yaml")


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["name"])
def test_each_schema_becomes_a_flow_or_a_refusal_that_says_why(
    entry: dict[str, Any], builtins: Plugins, tmp_path: Path
) -> None:
    try:
        generated = _generate(builtins, entry, tmp_path, None)
    except UserError as refusal:
        assert entry["name"] in REFUSED, f"refused: {refusal}"
        assert REFUSED[entry["name"]] in str(refusal)
        assert all(fault.file and fault.reason for fault in refusal.faults)
        return
    assert entry["name"] not in REFUSED, "expected a refusal"
    assert generated.flow.name


def test_nine_in_ten_schemas_of_objects_become_flows(builtins: Plugins, tmp_path: Path) -> None:
    of_objects = [entry for entry in MANIFEST if entry["describes_objects"]]
    flows = 0
    for entry in of_objects:
        try:
            _generate(builtins, entry, tmp_path, None)
        except UserError:
            continue
        flows += 1
    assert len(of_objects) >= 40
    assert flows / len(of_objects) >= 0.9, f"{flows} flows of {len(of_objects)} schemas"


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if is_yaml(path, text):
        return parse_yaml_data(text, str(path))
    return json.loads(text)


def _jsonschema_errors(schema_file: Path, root: Path, document: Any) -> set[tuple[str, str]]:
    """(pointer, message) of every error jsonschema finds in the whole document (the schema's
    own draft, its folder's files for $refs), told as the step tells it: at the deepest relevant
    place, the message bounded."""
    schema = _read(schema_file)
    dialect = dialect_of(schema)
    assert dialect is not None
    registry, _, _ = local_registry(schema_file, schema, dialect, _read, root)
    validator = dialect.validator(schema, registry=registry)
    errors = map(schema_faults.deepest, validator.iter_errors(document))
    return {(pointer(list(e.absolute_path)), schema_faults.message(e)) for e in errors}


def _nodes(flow: dict[str, Any], document: Any) -> int:
    """The units the flow should run for `document`, counted from the data: the nodes a walk
    reaches through the children fields and the entries of its maps, one per entry of a
    fanned-out map, one per item of a micro section's array, one for a top node checked
    whole, one for a fanout's gather."""
    root = flow["spec"]["root"]
    sections = root["units"] if root["pattern"] == "dag" else [root]
    count = 0
    for section in sections:
        count += _section_nodes(section, document)
    return count


def _section_nodes(section: dict[str, Any], document: Any) -> int:
    pattern = section.get("pattern")
    kept = section.get("over", {}).get("misfits") == "keep"
    if pattern in ("dfs", "bfs"):
        fields = section["over"].get("children", [])
        maps = section["over"].get("entries", [])
        stack, count = [document], 0
        while stack:
            node = stack.pop()
            count += 1
            if not isinstance(node, dict):
                continue  # a root that is no object, visited without children (kept)
            for name in fields:
                value = node.get(name)
                if kept and not holds_nodes(value, named=False):
                    continue
                if isinstance(value, dict):
                    stack.append(value)
                elif isinstance(value, list):
                    stack.extend(value)
            for name in maps:
                if not kept or holds_nodes(node.get(name), named=True):
                    stack.extend((node.get(name) or {}).values())
        return count
    if pattern == "fanout":
        # A gather (a collection's summary checking the array itself) is one more unit.
        gathered = 1 if "gather" in section else 0
        try:
            items = lookup(document, section["over"].get("path", ""))
        except LookupError:
            if not kept:
                raise
            items = []
        return (len(items) if isinstance(items, list | dict) else 0) + gathered
    if pattern == "dag":
        return sum(_section_nodes(unit, document) for unit in section["units"])
    return 1


def _reports(workdir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((workdir / "store").rglob("report.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        if "valid" in report:
            found.append(report)
    return found


@pytest.mark.parametrize(
    ("entry", "document"), DOCUMENTS, ids=[d["path"].split("/", 1)[1] for _, d in DOCUMENTS]
)
def test_each_document_runs_every_node_is_visited_and_the_verdict_is_jsonschemas(
    entry: dict[str, Any], document: dict[str, Any], builtins: Plugins, tmp_path: Path
) -> None:
    data = CORPUS / document["path"]
    generated = _generate(builtins, entry, tmp_path, data)
    (tmp_path / "corpus.flow.yaml").write_text(generated.yaml(), encoding="utf-8")
    result = run_meta("run", "corpus.flow.yaml", "--workdir", "run", cwd=tmp_path)
    content = _read(data)
    expected = _jsonschema_errors(CORPUS / entry["schema"], schema_root(entry), content)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    steps = [unit for unit in report["units"] if unit["state"] == "succeeded"]
    assert len(steps) == _nodes(generated.document, content)
    reports = _reports(tmp_path / "run")
    assert len(reports) == len(steps)
    found = {(error["pointer"], error["message"]) for r in reports for error in r["errors"]}
    assert all(r["valid"] for r in reports) == (not expected), (found, expected)
    assert _comparable(found) == _comparable(expected)


def _comparable(errors: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Errors with the instance left out of messages that quote it whole: a walk's node is
    quoted without its children (they are nodes of their own), jsonschema quotes all of it."""
    quoting = (
        " is not valid under any of the given schemas",
        " is valid under each of ",
        " should not be valid under ",
    )
    comparable = set()
    for where, message in errors:
        for suffix in quoting:
            if suffix in message:
                message = suffix + message.split(suffix, 1)[1]
        comparable.add((where, message))
    return comparable


@pytest.mark.parametrize(
    ("name", "maps"),
    [("github-workflows", ["jobs", "services"]), ("compose-spec", ["services", "jobs"])],
)
def test_maps_of_named_entries_are_walked_at_any_depth(
    name: str, maps: list[str], builtins: Plugins, tmp_path: Path
) -> None:
    """A workflow's jobs (and each job's services), a compose file's services: entries keyed by
    name below the top node are nodes of the walk, each named by its key."""
    (entry,) = [e for e in MANIFEST if e["name"] == name]
    root = _generate(builtins, entry, tmp_path, None).document["spec"]["root"]
    walk = root["units"][0] if root["pattern"] == "dag" else root
    assert walk["pattern"] == "dfs"
    assert walk["over"]["entries"] == maps

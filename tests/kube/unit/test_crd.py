"""The MetaFlow CRD: derived from the one JSON Schema, structural, and kept in step with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from meta.cli import main
from meta.flow.schema import flow_schema
from meta.kube.crd import (
    UNIT_DEPTH,
    crd_document,
    crd_yaml,
    schema_crd_document,
    schema_crd_yaml,
)

REPO = Path(__file__).resolve().parents[3]
STRUCTURAL_FORBIDDEN = {"$ref", "if", "then", "else", "uniqueItems", "const", "propertyNames"}


def _nodes(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(schema, dict):
        return found
    found.append((path, schema))
    for name, sub in schema.get("properties", {}).items():
        found.extend(_nodes(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        found.extend(_nodes(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        found.extend(_nodes(schema["additionalProperties"], f"{path}{{}}"))
    return found


def _spec_schema() -> dict[str, Any]:
    version = crd_document()["spec"]["versions"][0]
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def test_the_committed_crd_is_the_one_the_schema_gives() -> None:
    committed = (REPO / "crds" / "metaflow.yaml").read_text()
    assert committed == crd_yaml(), (
        "crds/metaflow.yaml is stale: run `meta crd -o crds/metaflow.yaml`"
    )


def test_the_charts_crd_is_the_same_file() -> None:
    # Helm installs the CRDs of a chart's crds/ folder; a copy, since packages keep no links.
    chart = REPO / "charts" / "meta-orchestrator" / "crds" / "metaflow.yaml"
    assert chart.read_text() == crd_yaml(), f"run `meta crd -o {chart.relative_to(REPO)}`"


LAST_APPLIED_LIMIT = 256 * 1024
"""All of an object's annotations, together, hold at most this many bytes."""


def test_the_crd_fits_a_client_side_kubectl_apply_with_room_to_grow() -> None:
    """`kubectl apply -f` (client-side) copies the whole object, as compact JSON, into the
    annotation kubectl.kubernetes.io/last-applied-configuration; past 256 KiB the API server
    refuses it (Argo ships a CRD installer because its CRDs grew past that). This fails while
    there is still a quarter of the room left (tests/kube/cluster/test_chart.py applies it with
    a real kubectl)."""
    size = len(json.dumps(crd_document(), separators=(",", ":")).encode())
    assert size < LAST_APPLIED_LIMIT * 3 // 4, (
        f"the CRD is {size} bytes as JSON, near the {LAST_APPLIED_LIMIT} a client-side apply "
        "holds: make it smaller (fewer levels of the unit tree, shorter descriptions)"
    )


def test_meta_crd_prints_the_same_document() -> None:
    result = CliRunner().invoke(main, ["crd"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.output) == crd_document()


def test_names_status_and_printer_columns() -> None:
    crd = crd_document()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "metaflows.meta-orchestrator.io"
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "MetaFlow",
        "metaflows",
        ["mf"],
    )
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Progress", "Active", "Age"]


def test_every_node_is_structural() -> None:
    """Typed, or explicitly kept whole; none of the keywords the API server refuses."""
    for path, node in _nodes(_spec_schema(), "spec"):
        assert not STRUCTURAL_FORBIDDEN & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


def test_the_server_checks_enums_and_bounds_of_the_unit_tree() -> None:
    root = _spec_schema()["properties"]["root"]
    assert root["properties"]["pattern"]["enum"] == list(
        flow_schema()["$defs"]["section"]["properties"]["pattern"]["enum"]
    )
    assert root["properties"]["scope"]["enum"] == ["macro", "micro"]
    assert root["properties"]["maxActive"] == {"type": "integer", "minimum": 1, "maximum": 100000}
    assert root["properties"]["run"]["properties"]["command"]["minItems"] == 1
    child = root["properties"]["units"]["items"]
    assert child["properties"]["maxActive"]["minimum"] == 1
    assert root["x-kubernetes-validations"], "the root unit carries CEL rules"


def test_the_unit_tree_is_unrolled_to_a_bound_then_kept_whole() -> None:
    node = _spec_schema()["properties"]["root"]
    for _ in range(UNIT_DEPTH - 1):
        node = node["properties"]["units"]["items"]
        assert "properties" in node
    deepest = node["properties"]["units"]["items"]
    assert deepest == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_unknown_fields_reach_the_operator_instead_of_being_pruned() -> None:
    spec = _spec_schema()
    assert spec.get("x-kubernetes-preserve-unknown-fields") is True
    assert spec["properties"]["root"].get("x-kubernetes-preserve-unknown-fields") is True


def test_descriptions_are_written_once_on_the_root_unit_not_at_every_level() -> None:
    root = _spec_schema()["properties"]["root"]
    assert root["description"] and root["properties"]["when"].get("description")
    child = root["properties"]["units"]["items"]
    texts = [node for _, node in _nodes(child, "child") if "description" in node]
    assert texts == [], "a deeper unit repeats the root unit's descriptions"


def test_the_metaschema_crd_is_committed_in_both_places_and_small() -> None:
    for folder in (REPO / "crds", REPO / "charts" / "meta-orchestrator" / "crds"):
        committed = (folder / "metaschema.yaml").read_text()
        assert committed == schema_crd_yaml(), (
            f"run `meta crd --kind MetaSchema -o {(folder / 'metaschema.yaml').relative_to(REPO)}`"
        )
    version = schema_crd_document()["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for path, node in _nodes(root):
        assert not STRUCTURAL_FORBIDDEN & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
    assert version["subresources"] == {"status": {}}
    assert len(json.dumps(schema_crd_document())) < 8 * 1024

"""The `tableschema` generator: what it claims, the flow it writes, and the faults it names."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from meta_tableschema.plugin import SCORE, TableSchemaGenerator

from meta.errors import UserError
from meta.generate.pipeline import choose, read_description
from meta.generate.plugins import Source, load_plugins
from meta.hookspecs import Description
from meta.testing import check_generator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "datapackage.json"


def package(tmp_path: Path, resources: list[Any], name: str | None = "tiny") -> Path:
    path = tmp_path / "datapackage.json"
    document: dict[str, Any] = {"resources": resources}
    if name is not None:
        document["name"] = name
    path.write_text(json.dumps(document))
    return path


def resource(name: str = "things", **schema: Any) -> dict[str, Any]:
    fields = schema.pop("fields", [{"name": "id", "type": "integer"}])
    return {"name": name, "path": f"{name}.csv", "schema": {"fields": fields, **schema}}


def test_the_example_and_other_packages_conform(tmp_path: Path) -> None:
    one = package(tmp_path, [resource(primaryKey="id")])

    generated = check_generator("tableschema", [EXAMPLE, one])

    assert [g.flow.name for g in generated] == ["corner-shop", "tiny"]


def test_the_flow_fans_out_over_the_resources_and_gathers_one_report(tmp_path: Path) -> None:
    description = read_description(EXAMPLE, flow_dir=tmp_path)

    document = TableSchemaGenerator().generate(description)

    root = document["spec"]["root"]
    assert root["pattern"] == "fanout"
    assert root["over"] == {"input": "package", "path": "/resources"}
    assert root["visit"]["run"]["command"][0] == "meta-tableschema-check"
    assert root["gather"]["run"]["command"][0] == "meta-tableschema-report"
    package_path = tmp_path / document["spec"]["inputs"]["package"]["path"]
    assert package_path.resolve() == EXAMPLE


def test_generation_is_the_same_yaml_every_time() -> None:
    first, second = (
        yaml.safe_dump(TableSchemaGenerator().generate(read_description(EXAMPLE))) for _ in range(2)
    )
    assert first == second


def test_a_data_package_scores_high_and_wins_among_all_plugins() -> None:
    description = read_description(EXAMPLE)

    assert TableSchemaGenerator().score(description) == SCORE > 0
    assert choose(load_plugins(autoload=True), description).generator.name == "tableschema"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"type": "object", "properties": {"resources": {"type": "array"}}},
        {"resources": []},
        {"resources": [{"name": "x", "path": "x.csv"}]},
        {"resources": [{"name": "x", "path": "x.csv", "schema": "schema.json"}]},
        {"resources": [resource(), {"name": "y", "path": "y.csv", "schema": {}}]},
    ],
)
def test_anything_else_scores_zero(document: Any) -> None:
    description = Description(path=Path("datapackage.json"), document=document)

    assert TableSchemaGenerator().score(description) == 0


def test_the_plugin_is_installed_with_its_distribution_name_and_version() -> None:
    plugins = load_plugins(autoload=True)

    registered = plugins.catalogue.get("tableschema")
    assert registered is not None
    assert registered.source == Source(
        "distribution", "meta-tableschema", version("meta-tableschema")
    )


def test_faults_name_their_json_pointers(tmp_path: Path) -> None:
    path = package(
        tmp_path,
        [
            resource("ok"),
            resource("ok"),
            {**resource("-bad"), "path": "/etc/passwd"},
            resource("typed", fields=[{"name": "when", "type": "datetime"}]),
            resource(
                "limits", fields=[{"name": "s", "constraints": {"minimum": 1, "unique": True}}]
            ),
            resource("keyed", primaryKey=["nope"]),
        ],
    )

    with pytest.raises(UserError) as caught:
        TableSchemaGenerator().generate(read_description(path))

    faults = {fault.pointer: fault.reason for fault in caught.value.faults}
    assert all(fault.file.endswith("datapackage.json") for fault in caught.value.faults)
    assert faults["/resources/1/name"] == "duplicate resource name 'ok' (see /resources/0)"
    assert faults["/resources/2/name"].startswith("resource name '-bad' must start with")
    assert "not a relative path" in faults["/resources/2/path"]
    assert faults["/resources/3/schema/fields/0/type"].startswith(
        "type 'datetime' is not supported"
    )
    assert faults["/resources/4/schema/fields/0/constraints/minimum"] == (
        "minimum applies to integer, number, date"
    )
    assert faults["/resources/4/schema/fields/0/constraints/unique"].startswith(
        "constraint 'unique' is not supported"
    )
    assert faults["/resources/5/schema/primaryKey"] == "primary key field 'nope' is no field"


def test_the_flow_is_named_after_the_package_or_its_directory(tmp_path: Path) -> None:
    named = package(tmp_path, [resource()], name="My Data_Package!")
    assert TableSchemaGenerator().generate(read_description(named))["metadata"]["name"] == (
        "my-data-package"
    )
    folder = tmp_path / "Sales 2024"
    folder.mkdir()
    unnamed = package(folder, [resource()], name=None)
    assert TableSchemaGenerator().generate(read_description(unnamed))["metadata"]["name"] == (
        "sales-2024"
    )

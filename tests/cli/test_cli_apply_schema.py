"""`meta apply` of a data description: a MetaSchema (the schema, its overlay, its data), told
from a flow file by its name or its content; faults name the file and exit 2, sending nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import meta.cli.kube
from meta.cli import main
from meta.kube.apply import is_schema_file
from tests.kube.unit.fakes import FakeApi

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "schemas"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(meta.cli.kube, "kube_api", lambda kubeconfig: fake)
    return fake


def apply(*args: str | Path) -> Any:
    return CliRunner().invoke(main, ["apply", *map(str, args)])


def test_a_schema_file_becomes_a_metaschema_with_its_data_inline(api: FakeApi) -> None:
    schema, data = SAMPLES / "company.schema.json", SAMPLES / "company.data.json"
    result = apply(schema, "--data", data, "-n", "team")
    assert result.exit_code == 0, result.output
    assert result.output == "metaschema team/company created\n"
    body = api.schemas[("team", "company")]
    assert body["kind"] == "MetaSchema"
    # Each file's text: the API server would not keep an object's key order.
    assert body["spec"] == {"schema": schema.read_text(), "data": data.read_text()}
    # Applied again, changed: its spec is replaced (the operator then makes a new flow).
    result = apply(schema, "--data-path", "shared/company.json", "-n", "team")
    assert result.output == "metaschema team/company configured\n"
    assert api.schemas[("team", "company")]["spec"]["dataPath"] == "shared/company.json"
    assert "data" not in api.schemas[("team", "company")]["spec"]


def test_the_overlay_beside_the_schema_comes_along_as_meta_generate_finds_it(
    api: FakeApi, tmp_path: Path
) -> None:
    folder = REPO / "samples" / "ci-workflow"
    for name in ("github-workflows.json", "github-workflows.meta.yaml", "ci.data.yml"):
        shutil.copy(folder / name, tmp_path / name)
    result = apply(tmp_path / "github-workflows.json", "--data", tmp_path / "ci.data.yml")
    assert result.exit_code == 0, result.output
    spec = api.schemas[("default", "github-workflows")]["spec"]
    assert spec["overlay"] == (folder / "github-workflows.meta.yaml").read_text()
    assert spec["data"] == (folder / "ci.data.yml").read_text()


def test_a_schema_is_told_from_a_flow_by_its_name_or_content(tmp_path: Path) -> None:
    assert is_schema_file(SAMPLES / "company.schema.json")
    assert is_schema_file(REPO / "samples" / "ci-workflow" / "github-workflows.json")
    assert not is_schema_file(REPO / "samples" / "tree-sum" / "tree-sum.flow.yaml")
    assert not is_schema_file(REPO / "samples" / "dag-fanout" / "dag-fanout.flow.py")
    plain = tmp_path / "data.json"
    plain.write_text('{"name": "x"}')
    assert not is_schema_file(plain)


def test_faults_name_the_file_exit_2_and_send_nothing(api: FakeApi, tmp_path: Path) -> None:
    broken = tmp_path / "broken.schema.json"
    broken.write_text('{"type": ')
    result = apply(broken)
    assert result.exit_code == 2
    assert "broken.schema.json: /: invalid JSON at line 1" in result.output
    listed = tmp_path / "list.schema.json"
    listed.write_text("[1]")
    assert "list.schema.json: /: a data description is an object" in apply(listed).output
    schema = SAMPLES / "company.schema.json"
    both = apply(schema, "--data", SAMPLES / "company.data.json", "--data-path", "d.json")
    assert both.exit_code == 2 and "give --data or --data-path, not both" in both.output
    outside = apply(schema, "--data-path", "../d.json")
    assert "a path inside the store" in outside.output
    bad_name = apply(schema, "--name", "Not_A_Name")
    assert bad_name.exit_code == 2 and "use --name" in bad_name.output
    flow = REPO / "samples" / "tree-sum" / "tree-sum.flow.yaml"
    mixed = apply(flow, "--data", SAMPLES / "company.data.json")
    assert mixed.exit_code == 2 and "--data: for a data description" in mixed.output
    assert apply(schema, "--set", "x=1").exit_code == 2
    assert not api.schemas and not api.flows


def test_meta_crd_writes_the_metaschema_crd(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    result = CliRunner().invoke(main, ["crd", "--kind", "MetaSchema", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(target.read_text())["spec"]["names"]["shortNames"] == ["msc"]

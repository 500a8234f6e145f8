"""meta.steps.yamldata: YAML read as JSON data, within the limits every reader shares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meta.errors import UserError
from meta.flow.files import parse_yaml, parse_yaml_data
from meta.steps.validate_node import main
from meta.steps.yamldata import (
    JsonYamlLoader,
    YamlRefused,
    _parsed_by_libyaml,
    load_checked,
    load_yaml_data,
)

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 10)}]\n"
    for i in range(8)
)
"""A billion laughs: ten times ten... aliases, a billion values once expanded."""


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    with pytest.raises(YamlRefused) as refused:
        load_yaml_data(LAUGHS)
    assert refused.value.where.startswith("/")
    assert "expands to more than 1,000,000 values" in refused.value.reason


def test_the_validator_step_refuses_an_alias_bomb_as_misuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("META_OUTPUT", str(tmp_path / "out"))
    Path("s.schema.json").write_text(json.dumps({"type": "object"}))
    Path("bomb.yaml").write_text(LAUGHS)
    assert main(["--schema=s.schema.json", "--data=bomb.yaml", "--at="]) == 2
    said = capsys.readouterr().err
    assert said.startswith("validate-node: bomb.yaml: /")
    assert "the document expands to more than 1,000,000 values" in said


def test_a_merge_key_merges_and_the_mappings_own_keys_win() -> None:
    text = """\
x: &d {eco: pip, directory: /, schedule: {interval: daily}}
updates:
  - <<: *d
    directory: /docs
"""
    merged = {"eco": "pip", "directory": "/docs", "schedule": {"interval": "daily"}}
    assert load_yaml_data(text)["updates"] == [merged]
    flow = "units:\n  - &u {name: a, retries: 1}\n  - <<: *u\n    name: b\n"
    assert parse_yaml(flow, "f.yaml")["units"][1] == {"name": "b", "retries": 1}


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",
        "x: &d {a: 1}\ny:\n  <<: *d\n  b: 3\n  b: 4\n",
        "a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: *a, <<: *b}\n",
    ],
)
def test_a_key_the_mapping_writes_twice_is_still_refused(text: str) -> None:
    with pytest.raises(UserError, match="appears twice"):
        parse_yaml_data(text, "d.yaml")
    with pytest.raises(UserError, match="appears twice"):
        parse_yaml(text, "f.yaml")


CORPUS = Path(__file__).parents[1] / "generators" / "corpus" / "documents"


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
@pytest.mark.parametrize(
    "document", sorted(CORPUS.rglob("*.y*ml")), ids=lambda path: path.parent.name + "/" + path.name
)
def test_libyaml_reads_published_documents_as_the_python_parser_does(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert issubclass(_parsed_by_libyaml(JsonYamlLoader), yaml.cyaml.CParser)
    assert load_checked(text, JsonYamlLoader, text_keys=True) == (
        _python_loaded(text, JsonYamlLoader)
    )


def _python_loaded(text: str, loader_class: type[yaml.SafeLoader]) -> object:
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def test_a_document_nested_past_what_libyaml_reads_is_refused_saying_so() -> None:
    with pytest.raises(YamlRefused, match="nested too deeply"):
        load_yaml_data("[" * 100_000 + "]" * 100_000)

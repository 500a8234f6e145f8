"""meta.steps.yamldata: YAML read as JSON data, within the limits every reader shares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meta.steps.validate_node import main
from meta.steps.yamldata import YamlRefused, load_yaml_data

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

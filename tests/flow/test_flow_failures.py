"""onFailure and finally in the flow language: the schema, the typed model, the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meta.flow.checks import semantic_faults
from meta.flow.model import Section, Step
from meta.flow.parse import build_flow
from meta.flow.schema import schema_faults


def step(name: str, *command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"command": list(command or ["true"])}, **extra}


def section(name: str, pattern: str, scope: str = "macro", **fields: Any) -> dict[str, Any]:
    return {"name": name, "scope": scope, "pattern": pattern, **fields}


def document(root: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "t"},
        "spec": {"root": root, **spec},
    }


def schema(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.pointer, f.reason) for f in schema_faults(doc, "f.yaml")]


def checks(doc: dict[str, Any]) -> list[tuple[str, str]]:
    assert schema(doc) == []
    found = semantic_faults(build_flow(doc, Path("/f.yaml"), "f"))
    return [(f.pointer, f.reason) for f in found]


def test_on_failure_and_finally_are_read_into_the_model() -> None:
    root = section(
        "d",
        "dag",
        onFailure="continue",
        units=[step("a")],
        **{"finally": [step("tidy"), section("logs", "sequence", units=[step("l")])]},
    )
    flow = build_flow(document(root, **{"finally": [step("notify")]}), Path("/f.yaml"), "f")
    assert isinstance(flow.root, Section)
    assert flow.root.on_failure == "continue"
    assert [u.name for u in flow.root.final] == ["tidy", "logs"]
    assert flow.root.final[1].origin.pointer == "/spec/root/finally/1"
    assert [u.name for u in flow.final] == ["notify"]
    assert isinstance(flow.final[0], Step)
    assert flow.final[0].origin.pointer == "/spec/finally/0"


def test_stop_is_the_default() -> None:
    flow = build_flow(document(section("s", "sequence", units=[step("a")])), Path("/f.yaml"), "f")
    assert isinstance(flow.root, Section)
    assert (flow.root.on_failure, flow.root.final, flow.final) == ("stop", (), ())


def test_the_schema_refuses_an_unknown_policy_and_an_empty_finally() -> None:
    bad = section("s", "sequence", onFailure="ignore", units=[step("a")])
    assert [p for p, _ in schema(document(bad))] == ["/spec/root/onFailure"]
    empty = section("s", "sequence", units=[step("a")], **{"finally": []})
    assert [p for p, _ in schema(document(empty))] == ["/spec/root/finally"]
    assert [p for p, _ in schema(document(step("a"), **{"finally": [{"name": "x"}]}))] != []


def test_finally_units_see_upstream_and_failures_and_only_they_see_failures() -> None:
    notify = step("n", "echo", "{{ upstream.s.state }}", "{{ failures | length }}")
    assert (
        checks(document(section("s", "sequence", units=[step("a")]), **{"finally": [notify]})) == []
    )
    early = step("early", "echo", "{{ failures | length }}")
    found = checks(document(section("s", "sequence", units=[early])))
    assert found[0][0] == "/spec/root/units/0/run/command/1"
    assert "failures" in found[0][1]


def test_finally_units_have_unique_names_and_no_depends_on() -> None:
    root = section(
        "s",
        "sequence",
        units=[step("a")],
        **{"finally": [step("x"), step("x"), step("y", dependsOn=["x"])]},
    )
    found = checks(document(root))
    assert (
        "/spec/root/finally/1/name",
        "duplicate unit name 'x' in finally of section 's'",
    ) in found
    assert any(pointer == "/spec/root/finally/2/dependsOn" for pointer, _ in found)


def test_a_micro_sections_finally_holds_steps_and_micro_sections_only() -> None:
    root = section(
        "pod",
        "sequence",
        "micro",
        units=[step("a")],
        **{"finally": [section("m", "sequence", "macro", units=[step("b")])]},
    )
    found = checks(document(root))
    assert [pointer for pointer, _ in found] == ["/spec/root/finally/0/scope"]

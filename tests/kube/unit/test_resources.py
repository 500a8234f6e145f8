"""`meta apply`'s resources: self-contained, so the operator plans them with no file at hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta.cli.runs import describe
from meta.errors import FlowInvalid
from meta.flow.model import FileInput, FlowRef
from meta.kube.apply import flow_resource, status_view
from meta.kube.controller.files import place_files
from meta.kube.controller.reconcile import plan_resource
from meta.plan.plan import compile_plan

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "macro-of-micro"


def test_file_inputs_are_embedded_as_files_and_referenced_flows_as_documents(
    tmp_path: Path,
) -> None:
    resource = flow_resource(compile_plan(SAMPLE / "macro-of-micro.flow.yaml"), "team")
    spec = resource["spec"]
    assert resource["metadata"] == {"name": "macro-of-micro", "namespace": "team"}
    assert spec["inputs"] == {"numbers": {"path": "data/numbers.json"}}, "a file stays a file"
    raw = (SAMPLE / "data" / "numbers.json").read_bytes()
    assert spec["files"] == {"data/numbers.json": raw.decode()}
    assert list(spec["flows"]) == ["median.flow.yaml"]
    middle = spec["root"]["units"][2]["flowRef"]
    assert middle["inputs"] == {"numbers": {"path": "data/numbers.json"}}, "the flowRef's too"

    resource["metadata"]["uid"] = "uid-1"
    store = tmp_path / "store" / "files"
    placed = place_files(resource, store, "team/macro-of-micro")
    assert "files" not in placed["spec"]
    assert (store / "data" / "numbers.json").read_bytes() == raw, "the very bytes"
    plan = plan_resource(placed, tmp_path / "nowhere")
    assert plan.flow.inputs["numbers"] == FileInput(store / "data" / "numbers.json")
    ref = plan.flow.root.units[2]  # type: ignore[union-attr]
    assert isinstance(ref, FlowRef)
    assert plan.subplan(ref).inputs["numbers"] == FileInput(store / "data" / "numbers.json")


def test_a_flow_written_in_python_is_sent_as_the_document_it_makes() -> None:
    folder = SAMPLE.parent / "dag-fanout"
    from_python = flow_resource(compile_plan(folder / "dag-fanout.flow.py"), "team")
    from_yaml = flow_resource(compile_plan(folder / "dag-fanout.flow.yaml"), "team")
    assert from_python == from_yaml
    assert from_python["spec"]["files"] == {
        "data/orders.json": (folder / "data" / "orders.json").read_text()
    }


def test_a_file_outside_the_flows_folder_is_inlined_as_its_value(tmp_path: Path) -> None:
    (tmp_path / "shared.json").write_text("[1, 2]")
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "f.flow.yaml").write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: f}\n"
        "spec:\n  inputs: {xs: {path: ../shared.json}}\n"
        "  root: {name: s, run: {command: [cat, '{{ inputs.xs }}']}}\n"
    )
    spec = flow_resource(compile_plan(folder / "f.flow.yaml"), "team")["spec"]
    assert spec["inputs"] == {"xs": {"value": [1, 2]}}
    assert "files" not in spec


def test_a_file_key_leaving_the_folder_is_refused_with_its_path(tmp_path: Path) -> None:
    resource = {"metadata": {"name": "f"}, "spec": {"files": {"../etc/passwd": "x"}}}
    with pytest.raises(FlowInvalid) as refused:
        place_files(resource, tmp_path, "team/f")
    (fault,) = refused.value.faults
    assert (fault.file, fault.pointer) == ("team/f", "/spec/files/..~1etc~1passwd")
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_status_in_words() -> None:
    resource = {
        "metadata": {"name": "wide", "namespace": "team"},
        "status": {
            "phase": "Failed",
            "progress": "3/4",
            "active": 0,
            "succeeded": 3,
            "failed": 1,
            "startedAt": "2026-12-06T07:00:00Z",
            "finishedAt": "2026-12-06T07:01:05Z",
            "failedUnit": "wide/each/2/item",
            "reason": "exited with code 3\nboom",
            "conditions": [{"type": "Valid", "status": "True", "message": "ok"}],
            "sections": [
                {"id": "wide/each", "pattern": "fanout", "scope": "macro", "maxActive": 2,
                 "peakActive": 2, "unitsRun": 4},
            ],
        },
    }  # fmt: skip
    view = status_view(resource)
    assert view["durationSeconds"] == 65.0
    assert view["units"] == {
        "succeeded": 3, "failed": 1, "cancelled": None, "cached": None, "running": 0,
        "skipped": None,
    }  # fmt: skip
    lines = list(describe(view))
    assert lines[1].startswith("  flow wide, started ") and lines[1].endswith(", took 1m05s")
    assert lines[:1] + lines[2:] == [
        "team/wide: failed",
        "  units: 3 succeeded, 1 failed, 0 running",
        "  condition Valid=True: ok",
        "  failed unit: wide/each/2/item",
        "  exited with code 3",
        "  boom",
        "  section wide/each: fanout (macro), peak 2/2, 4 units",
    ]

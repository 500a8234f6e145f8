"""`meta apply`'s resources: self-contained, so the operator plans them with no file at hand."""

from __future__ import annotations

import json
from pathlib import Path

from meta.flow.model import FlowRef, ValueInput
from meta.plan.plan import compile_plan
from meta.runtime.kube.resources import describe_status, flow_resource
from meta.runtime.kube.runner import plan_resource

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "macro-of-micro"


def test_file_inputs_are_inlined_and_referenced_flows_embedded(tmp_path: Path) -> None:
    resource = flow_resource(compile_plan(SAMPLE / "macro-of-micro.flow.yaml"), "team")
    numbers = json.loads((SAMPLE / "data" / "numbers.json").read_text())
    spec = resource["spec"]
    assert resource["metadata"] == {"name": "macro-of-micro", "namespace": "team"}
    assert spec["inputs"] == {"numbers": {"value": numbers}}
    assert list(spec["flows"]) == ["median.flow.yaml"]
    middle = spec["root"]["units"][2]["flowRef"]
    assert middle["inputs"] == {"numbers": {"value": numbers}}, "the flowRef's file input too"

    resource["metadata"]["uid"] = "uid-1"
    plan = plan_resource(resource, tmp_path / "nowhere")
    ref = plan.flow.root.units[2]  # type: ignore[union-attr]
    assert isinstance(ref, FlowRef)
    assert plan.subplan(ref).inputs["numbers"] == ValueInput(numbers)


def test_status_in_words() -> None:
    resource = {
        "metadata": {"name": "wide", "namespace": "team"},
        "status": {
            "phase": "Failed",
            "progress": "3/4",
            "active": 0,
            "failedUnit": "wide/each/2/item",
            "reason": "exited with code 3\nboom",
            "conditions": [{"type": "Valid", "status": "True", "message": "ok"}],
            "sections": [
                {"id": "wide/each", "pattern": "fanout", "scope": "macro", "maxActive": 2,
                 "peakActive": 2, "unitsRun": 4},
            ],
        },
    }  # fmt: skip
    assert list(describe_status(resource)) == [
        "team/wide: Failed",
        "  progress 3/4 (succeeded/reached), active 0",
        "  condition Valid=True: ok",
        "  failed unit: wide/each/2/item",
        "  exited with code 3",
        "  boom",
        "  section wide/each: fanout (macro), peak 2/2, 4 units",
    ]

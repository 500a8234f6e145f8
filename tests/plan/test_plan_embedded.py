"""Flows embedded in `spec.flows`: a flowRef uses the embedded document instead of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meta.errors import FlowInvalid
from meta.flow.model import FlowRef, ValueInput
from meta.plan.plan import compile_plan


def median(name: str = "median", root: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {
            "inputs": {"numbers": {"value": [3, 1, 2]}},
            "root": root or {"name": "median", "run": {"command": ["true"]}},
        },
    }


def write(tmp_path: Path, flows: dict[str, Any], ref: str = "lib/median.flow.yaml") -> Path:
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "caller"},
        "spec": {
            "root": {
                "name": "middle",
                "flowRef": {"path": ref, "inputs": {"numbers": {"value": [9, 8]}}},
            },
            "flows": flows,
        },
    }
    path = tmp_path / "caller.flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_flow_ref_uses_the_embedded_document_and_reads_no_file(tmp_path: Path) -> None:
    plan = compile_plan(write(tmp_path, {"lib/median.flow.yaml": median()}))
    assert not (tmp_path / "lib").exists()
    root = plan.flow.root
    assert isinstance(root, FlowRef)
    sub = plan.subplan(root)
    assert sub.flow.name == "median"
    assert sub.flow.source == (tmp_path / "lib" / "median.flow.yaml").resolve()
    assert sub.inputs["numbers"] == ValueInput([9, 8])


def test_embedded_flows_reference_each_other_by_keys_relative_to_the_root(tmp_path: Path) -> None:
    inner = median("inner")
    outer = median("outer", {"name": "deeper", "flowRef": {"path": "inner.flow.yaml"}})
    flows = {"lib/median.flow.yaml": outer, "lib/inner.flow.yaml": inner}
    plan = compile_plan(write(tmp_path, flows))
    root = plan.flow.root
    assert isinstance(root, FlowRef)
    deeper = plan.subplan(root)
    assert isinstance(deeper.flow.root, FlowRef)
    assert deeper.subplan(deeper.flow.root).flow.name == "inner"


def test_a_fault_in_an_embedded_flow_names_its_key(tmp_path: Path) -> None:
    broken = median("median", {"name": "median", "run": {"command": []}})
    with pytest.raises(FlowInvalid) as refused:
        compile_plan(write(tmp_path, {"lib/median.flow.yaml": broken}))
    (fault,) = refused.value.faults
    assert fault.file.endswith("caller.flow.yaml /spec/flows/lib~1median.flow.yaml")
    assert fault.pointer == "/spec/root/run/command"


def test_a_flow_ref_to_a_path_neither_embedded_nor_on_disk_is_a_fault(tmp_path: Path) -> None:
    with pytest.raises(FlowInvalid) as refused:
        compile_plan(write(tmp_path, {"lib/other.flow.yaml": median()}))
    assert "does not exist" in refused.value.faults[0].reason

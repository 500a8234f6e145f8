"""`spec.files`: what `meta apply` embeds, and where the operator puts it for its pods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from meta.errors import FlowInvalid
from meta.flow.model import FileInput, FlowRef, Section
from meta.kube.apply import flow_resource
from meta.kube.controller.files import place_files
from meta.kube.controller.reconcile import plan_resource
from meta.plan.plan import compile_plan

HEAD = "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def applied(flow: Path) -> dict[str, Any]:
    resource = flow_resource(compile_plan(flow), "team")
    resource["metadata"]["uid"] = "uid-1"
    return resource


def test_line_ends_and_non_ascii_text_arrive_byte_for_byte(tmp_path: Path) -> None:
    data = "name,city\r\nZoë,Kraków\r\n".encode()
    write(tmp_path / "data" / "people.csv", data)
    flow = write(
        tmp_path / "f.flow.yaml",
        HEAD + "metadata: {name: f}\nspec:\n  inputs: {people: {path: data/people.csv}}\n"
        "  root: {name: s, run: {command: [cat, '{{ inputs.people }}']}}\n",
    )
    store = tmp_path / "store"
    placed = place_files(applied(flow), store, "team/f")
    assert (store / "data" / "people.csv").read_bytes() == data
    assert placed["spec"]["inputs"]["people"] == {"path": str(store / "data" / "people.csv")}
    # Pods read it as their own uid (10001), whoever the operator runs as.
    assert (store / "data" / "people.csv").stat().st_mode & 0o777 == 0o644


def test_a_file_that_is_not_utf8_text_stays_a_path_on_the_data_volume(tmp_path: Path) -> None:
    write(tmp_path / "blob.bin", b"\xff\xfe\x00binary")
    flow = write(
        tmp_path / "f.flow.yaml",
        HEAD + "metadata: {name: f}\nspec:\n  inputs: {blob: {path: blob.bin}}\n"
        "  root: {name: s, run: {command: [cat, '{{ inputs.blob }}']}}\n",
    )
    spec = applied(flow)["spec"]
    assert spec["inputs"] == {"blob": {"path": "blob.bin"}}
    assert "files" not in spec


def test_embedded_flows_in_subfolders_and_flow_refs_in_visits_find_their_files(
    tmp_path: Path,
) -> None:
    write(tmp_path / "data" / "items.json", "[1, 2]")
    write(tmp_path / "lib" / "data" / "table.json", '{"k": 1}')
    write(
        tmp_path / "lib" / "child.flow.yaml",
        HEAD + "metadata: {name: child}\nspec:\n  inputs: {table: {path: data/table.json}}\n"
        "  root: {name: s, run: {command: [cat, '{{ inputs.table }}']}}\n",
    )
    flow = write(
        tmp_path / "main.flow.yaml",
        HEAD + "metadata: {name: main}\nspec:\n  inputs: {items: {path: data/items.json}}\n"
        "  root:\n    name: each\n    scope: macro\n    pattern: fanout\n"
        "    over: {input: items}\n"
        "    visit: {name: 'ref-{{ item }}', flowRef: {path: lib/child.flow.yaml,\n"
        "            inputs: {table: {path: lib/data/table.json}}}}\n",
    )
    resource = applied(flow)
    assert sorted(resource["spec"]["files"]) == ["data/items.json", "lib/data/table.json"]
    store = tmp_path / "store"
    plan = plan_resource(place_files(resource, store, "team/main"), tmp_path / "nowhere")
    assert plan.flow.inputs["items"] == FileInput(store / "data" / "items.json")
    section = plan.flow.root
    assert isinstance(section, Section) and isinstance(section.visit, FlowRef)
    bound = plan.subplan(section.visit).inputs["table"]
    assert bound == FileInput(store / "lib" / "data" / "table.json")
    child = resource["spec"]["flows"]["lib/child.flow.yaml"]["spec"]
    assert child["inputs"] == {"table": {"path": "data/table.json"}}, "relative to its file"


def test_placing_again_on_resume_rewrites_nothing(tmp_path: Path) -> None:
    resource = {"metadata": {"name": "f"}, "spec": {"files": {"a/b.json": "[]"}}}
    place_files(resource, tmp_path, "team/f")
    target = tmp_path / "a" / "b.json"
    os.utime(target, (1, 1))
    place_files(resource, tmp_path, "team/f")
    assert target.stat().st_mtime == 1
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json"], "no temporary left"


def test_a_file_key_inside_another_file_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    resource = {"metadata": {"name": "f"}, "spec": {"files": {"a": "x", "a/b": "y"}}}
    with pytest.raises(FlowInvalid) as refused:
        place_files(resource, tmp_path, "team/f")
    (fault,) = refused.value.faults
    assert fault.pointer == "/spec/files/a~1b" and "'a'" in fault.reason
    assert list(tmp_path.iterdir()) == []


def test_malformed_inputs_are_left_for_the_flow_language_to_report(tmp_path: Path) -> None:
    resource = {
        "metadata": {"name": "f"},
        "spec": {"files": {"x.json": "[]"}, "inputs": ["x.json"], "root": {"flowRef": "no"}},
    }
    placed = place_files(resource, tmp_path, "team/f")
    assert placed["spec"]["inputs"] == ["x.json"]

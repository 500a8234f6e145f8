"""The cluster commands refuse what they are given wrong before they reach any cluster."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from click.testing import CliRunner

from meta.cli import main


def test_meta_apply_validates_the_flow_first_and_sends_nothing(tmp_path: Path) -> None:
    flow = tmp_path / "bad.flow.yaml"
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "bad"},
        "spec": {"root": {"name": "s", "scope": "macro", "pattern": "sequence", "units": []}},
    }
    flow.write_text(yaml.safe_dump(document))
    missing = tmp_path / "no-cluster.kubeconfig"
    result = CliRunner().invoke(main, ["apply", str(flow)], env={"KUBECONFIG": str(missing)})
    assert result.exit_code == 2
    assert "bad.flow.yaml: /spec/root/units:" in result.output


def test_meta_operator_refuses_a_malformed_toleration_or_selector() -> None:
    result = CliRunner().invoke(main, ["operator", "--toleration", "no-effect"])
    assert result.exit_code == 2
    assert "expected KEY[=VALUE]:EFFECT" in result.output
    result = CliRunner().invoke(main, ["operator", "--node-selector", "novalue"])
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in result.output


def test_meta_crd_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    result = CliRunner().invoke(main, ["crd", "-o", str(target)])
    assert result.exit_code == 0
    assert yaml.safe_load(target.read_text())["kind"] == "CustomResourceDefinition"


def test_meta_operator_says_so_when_its_metrics_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["operator", "--metrics-port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on {port}" in result.output

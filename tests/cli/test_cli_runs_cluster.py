"""meta status and meta logs on a MetaFlow, through the CLI, with the cluster played by the
unit tests' fake API: the same shape as for a local run, a pod's log, and the faults."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import meta.cli.runs
from meta.cli import main
from meta.engine.driver import StepTask
from meta.kube.layout import step_pod
from meta.kube.types import FlowOwner, PodSettings
from tests.kube.unit.fakes import FakeApi
from tests.kube.unit.test_history import SPEC, run_flaky
from tests.kube.unit.test_runner import NS, resource, settings


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    api = FakeApi()
    task = StepTask(
        id="hello/shout/0/upper-0", name="upper-0", section="hello/shout", scope="macro",
        command=("true",), env={}, image=None, input={}, upstream=[], pod=None, workdir="/",
        attempt=1,
    )  # fmt: skip
    pod = step_pod(task, FlowOwner("team", "hello", "uid-1"), PodSettings(), [], "/store")
    api.pods[("team", pod["metadata"]["name"])] = pod
    api.logs[("team", pod["metadata"]["name"], "step", False)] = "said ALPHA\n"
    api.flows[("team", "hello")] = {
        "metadata": {"name": "hello", "namespace": "team"},
        "status": {
            "phase": "Running", "succeeded": 1, "failed": 0, "active": 2,
            "startedAt": "2026-12-06T07:00:00Z",
        },
    }  # fmt: skip
    monkeypatch.setattr(meta.cli.runs, "kube_api", lambda kubeconfig: api)
    return api


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_status_of_a_metaflow_has_the_shape_of_a_local_runs(
    cluster: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = invoke("status", "hello", "-n", "team")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "team/hello: running"
    assert lines[1].startswith("  flow hello, started ")
    assert lines[2] == "  units: 1 succeeded, 0 failed, 2 running"

    flow = tmp_path / "hello.flow.yaml"
    flow.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "meta-orchestrator.io/v1alpha1",
                "kind": "MetaFlow",
                "metadata": {"name": "hello"},
                "spec": {"root": {"name": "one", "run": {"command": ["true"]}}},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    assert invoke("run", str(flow), "--workdir", "w").exit_code == 0
    local = json.loads(invoke("status", "w", "-o", "json").stdout)
    remote = json.loads(invoke("status", "hello", "-n", "team", "-o", "json").stdout)
    assert list(local) == list(remote) and list(local["units"]) == list(remote["units"])
    assert (remote["run"], remote["state"], remote["finishedAt"]) == ("team/hello", "running", None)
    assert remote["units"]["cached"] is None, "a count the status lacks (an older operator's)"


def test_logs_of_a_metaflows_unit_come_from_its_pod(cluster: FakeApi) -> None:
    shown = invoke("logs", "hello", "upper-0", "-n", "team")
    assert (shown.exit_code, shown.stdout) == (0, "said ALPHA\n")
    followed = invoke("logs", "hello", "0/upper-0", "-n", "team", "--follow")
    assert followed.stdout == "said ALPHA\n"
    as_json = json.loads(invoke("logs", "hello", "upper-0", "-n", "team", "-o", "json").stdout)
    assert as_json["unit"] == "hello/shout/0/upper-0" and as_json["container"] == "step"
    assert as_json["pod"].startswith("hello-") and as_json["stdout"] == "said ALPHA\n"

    missing = invoke("logs", "hello", "lower", "-n", "team")
    assert missing.exit_code == 2
    assert missing.stderr == (
        "metaflow team/hello: /: no unit 'lower' has a pod or a log; its units: "
        "hello/shout/0/upper-0\n"
    )
    gone = invoke("status", "bye", "-n", "team")
    assert (gone.exit_code, gone.stderr) == (2, "metaflow team/bye: /: no such MetaFlow\n")


def test_status_shows_a_retried_units_attempts_as_a_local_run_of_the_same_flow_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    assert run_flaky(api, replace(settings(tmp_path), compact_journal=True)) == "Succeeded"
    api.flows[(NS, "tree")] = {**resource(SPEC), "status": api.status}
    monkeypatch.setattr(meta.cli.runs, "kube_api", lambda kubeconfig: api)
    flow = tmp_path / "tree.flow.yaml"
    document = {"apiVersion": "meta-orchestrator.io/v1alpha1", "kind": "MetaFlow"}
    flow.write_text(yaml.safe_dump({**document, "metadata": {"name": "tree"}, "spec": SPEC}))
    monkeypatch.chdir(tmp_path)
    assert invoke("run", str(flow), "--workdir", "w").exit_code == 0

    local = json.loads(invoke("status", "w", "-o", "json").stdout)["attempts"]
    remote = json.loads(invoke("status", "tree", "-n", NS, "-o", "json").stdout)["attempts"]
    assert [unit["id"] for unit in local] == [unit["id"] for unit in remote] == ["tree/seq/flaky"]
    (local_attempts,), (remote_attempts,) = ([u["history"] for u in v] for v in (local, remote))
    assert [list(a) for a in local_attempts] == [list(a) for a in remote_attempts]
    same = ("attempt", "state", "exitCode", "reason")
    assert (
        [[a[k] for k in same] for a in local_attempts]
        == [[a[k] for k in same] for a in remote_attempts]
        == [[1, "failed", 3, "exited with code 3"], [2, "succeeded", 0, ""]]
    )
    # Locally the step's stderr; in the cluster its termination message (the fake kubelet's).
    assert local_attempts[0]["stderrTail"] == "attempt one fails"
    assert remote_attempts[0]["stderrTail"] == "boom: the last words"

    def attempt_lines(*args: str) -> list[str]:
        shown = invoke("status", *args)
        assert shown.exit_code == 0, shown.output
        lines = [
            line for line in shown.stdout.splitlines() if re.match(r"  (attempts|  \d\.)", line)
        ]
        return [re.sub(r"started .*?(, took [^:]*)?(: |$)", "started T\\2", line) for line in lines]

    assert (
        attempt_lines("w")
        == attempt_lines("tree", "-n", NS)
        == [
            "  attempts of tree/seq/flaky (2):",
            "    1. failed, exit code 3, started T: exited with code 3",
            "    2. succeeded, exit code 0, started T",
        ]
    )
    # A run without its report (killed before it wrote one) shows them from its journal.
    (tmp_path / "w" / "report.json").unlink()
    assert attempt_lines("w") == attempt_lines("tree", "-n", NS)
    assert attempt_lines("w", "--unit", "steady")[-2:] == [
        "  attempts of tree/seq/steady (1):",
        "    1. succeeded, exit code 0, started T",
    ]
    # Compacted, the cluster kept no record of a unit that succeeded at once: it says where.
    shown = invoke("status", "tree", "-n", NS, "--unit", "steady")
    assert shown.exit_code == 2
    assert "no attempt of a unit 'steady' has ended on the journal's record" in shown.output
    assert "succeeded at its first attempt; every record is in the store, at " in shown.output

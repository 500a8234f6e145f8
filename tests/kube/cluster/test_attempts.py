"""Every attempt of a retried unit, in the cluster as locally: a macro step and a micro step
each exit 3 at their first attempt and succeed at their second, on the real node, and `meta
status` shows both attempts of each with the fields a local run of the same flow shows; a
step that times out once keeps its last words (read from its pod's log before the pod goes)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.kube.cluster.conftest import Cluster, RealNode
from tests.kube.cluster.operating import META, wait_phase
from tests.kube.cluster.test_node import FRAMEWORK_IMAGE, TIMEOUT, meta_apply, operating

FAILS_ONCE = 'if [ "$META_ATTEMPT" = 1 ]; then echo "attempt one fails" >&2; exit 3; fi'
HANGS_ONCE = 'if [ "$META_ATTEMPT" = 1 ]; then echo "still working" >&2; sleep 120; fi'
FLOW = {
    "apiVersion": "meta-orchestrator.io/v1alpha1",
    "kind": "MetaFlow",
    "metadata": {"name": "flaky"},
    "spec": {
        "defaults": {"retryBackoffSeconds": 1},
        "root": {
            "name": "main",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                {"name": "macro-step", "retries": 1, "run": {"command": ["sh", "-c", FAILS_ONCE]}},
                {
                    "name": "slow-step",
                    "retries": 1,
                    "timeoutSeconds": 15,
                    "run": {"command": ["sh", "-c", HANGS_ONCE]},
                },
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "sequence",
                    "units": [
                        {
                            "name": "micro-step",
                            "retries": 1,
                            "run": {"command": ["sh", "-c", FAILS_ONCE]},
                        }
                    ],
                },
            ],
        },
    },
}
SAME = ("attempt", "state", "exitCode", "reason", "stderrTail")


def status(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(shown(*args, "-o", "json", env=env))
    return view


def shown(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(META), "status", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def attempt_lines(text: str) -> list[str]:
    """The attempts `meta status` lists, their times left out."""
    lines = [line for line in text.splitlines() if re.match(r"  (attempts|  \d\.|     \|)", line)]
    return [re.sub(r"started [-\d]+ [:\d]+, took [\d.]+s", "started T", line) for line in lines]


def test_status_shows_every_attempt_of_a_retried_step_as_a_local_run_does(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    flow_file = tmp_path / "flaky.flow.yaml"
    flow_file.write_text(yaml.safe_dump(FLOW))
    subprocess.run(
        [str(META), "run", str(flow_file), "--workdir", str(tmp_path / "local")],
        check=True,
        capture_output=True,
    )
    local = status(str(tmp_path / "local"))
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        name = meta_apply(cluster, namespace, flow_file)
        found = wait_phase(cluster, namespace, name, ("Succeeded", "Failed"), TIMEOUT)
    assert found["status"]["phase"] == "Succeeded", found["status"]
    assert found["status"]["journalCompacted"]["notKept"] == 0, "read after compaction"
    remote = status(name, "-n", namespace, env=cluster.env())

    def attempts(view: dict[str, Any]) -> dict[str, list[list[Any]]]:
        return {u["id"]: [[a[k] for k in SAME] for a in u["history"]] for u in view["attempts"]}

    both = [
        [1, "failed", 3, "exited with code 3", "attempt one fails"],
        [2, "succeeded", 0, "", ""],
    ]
    assert attempts(local) == {
        "flaky/main/macro-step": both,
        "flaky/main/slow-step": [
            [1, "failed", -1, "timed out after 15 s", "still working"],
            [2, "succeeded", 0, "", ""],
        ],
        "flaky/main/pod/micro-step": both,
    }
    assert attempts(remote) == attempts(local)
    text = shown(name, "-n", namespace, env=cluster.env())
    print(text)
    assert attempt_lines(text) == attempt_lines(shown(str(tmp_path / "local")))
    assert remote["attemptsMissing"] is None
    counted = ("succeeded", "failed")
    assert [remote["units"][k] for k in counted] == [local["units"][k] for k in counted] == [3, 0]
    for unit in remote["attempts"]:
        for entry in unit["history"]:
            assert entry["startedAt"] <= entry["finishedAt"], entry

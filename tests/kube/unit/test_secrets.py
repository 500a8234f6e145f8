"""Secrets and parameters in the cluster: a secretRef is a reference the kubelet resolves (the
operator and the quarterback never read a value), fromEnv is refused, and `meta apply --set`
makes the given values the resource's inputs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from meta.engine.driver import PodTask, StepTask
from meta.errors import FlowInvalid
from meta.flow.model import FromEnv, SecretRef
from meta.kube.apply import flow_resource
from meta.kube.controller.reconcile import plan_resource
from meta.kube.layout import micro_pod, secret_variable, section_secrets, step_pod
from meta.kube.quarterback.driver import PodPaths
from meta.kube.quarterback.main import run_quarterback
from meta.kube.types import FlowOwner, PodSettings
from meta.plan.given import parse_sets
from meta.plan.plan import compile_plan
from tests.kube.unit.test_quarterback import FakePod, paths, write_work  # noqa: F401

OWNER = FlowOwner("team", "flow", "uid-1")
TOKEN = SecretRef("api", "token")
HEADER = "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: f}\n"


def task(env: dict[str, Any]) -> StepTask:
    return StepTask(
        id="flow/s", name="s", section="flow", scope="macro", command=("true",), env=env,
        image=None, input={}, upstream=[], pod=None, workdir="/data", attempt=1,
    )  # fmt: skip


def test_a_macro_steps_secret_is_a_secret_key_ref_and_its_log_never_the_status() -> None:
    pod = step_pod(task({"PLAIN": "x", "TOKEN": TOKEN}), OWNER, PodSettings(), [], "/store")
    (container,) = pod["spec"]["containers"]
    own = [v for v in container["env"] if not v["name"].startswith("META_")]
    assert own == [
        {"name": "PLAIN", "value": "x"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
    ]
    assert container["terminationMessagePolicy"] == "File"
    plain = step_pod(task({"PLAIN": "x"}), OWNER, PodSettings(), [], "/store")
    assert plain["spec"]["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_a_micro_pods_slots_hold_the_sections_secrets_and_the_quarterback_none(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "m.flow.yaml"
    flow.write_text(
        HEADER + "spec:\n  root:\n    name: m\n    scope: micro\n    pattern: sequence\n"
        "    units:\n"
        "      - {name: a, run: {command: [x], env: {T: {secretRef: {name: api, key: token}}}}}\n"
        "      - {name: b, run: {command: [x], env: {U: {secretRef: {name: api, key: token}},"
        " V: {secretRef: {name: db, key: pw}}}}}\n"
    )
    section = compile_plan(flow).flow.root
    secrets = section_secrets(section)  # type: ignore[arg-type]
    assert secrets == [TOKEN, SecretRef("db", "pw")]
    brief = PodTask(
        id="f/m", name="m", section="f", file="f", pointer="/spec/root", input={},
        iteration=None, hidden=(), upstream=[], attempt=1, max_active=2,
    )  # fmt: skip
    pod = micro_pod(brief, OWNER, PodSettings(), [], ["a", "b"], {}, "/s", secrets)
    quarterback, *slots = pod["spec"]["containers"]
    assert all(not v.get("valueFrom", {}).get("secretKeyRef") for v in quarterback["env"])
    expected = [
        {"name": secret_variable(ref), "valueFrom": {"secretKeyRef": {"name": n, "key": k}}}
        for ref, n, k in ((TOKEN, "api", "token"), (SecretRef("db", "pw"), "db", "pw"))
    ]
    assert [slot["env"] for slot in slots] == [expected, expected]


def test_a_micro_step_gets_its_secrets_under_its_names_and_they_stay_out_of_the_status(
    paths: PodPaths,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "micro-s3cret-value"
    # The kubelet's part: the slot container holds the section's secrets.
    monkeypatch.setenv(secret_variable(TOKEN), secret)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    check = (
        "import hashlib, os, sys\n"
        f"assert hashlib.sha256(os.environ['MY_TOKEN'].encode()).hexdigest() == {digest!r}\n"
        "assert not [k for k in os.environ if k.startswith('META_SECRET_')]\n"
        "sys.stderr.write('leaking ' + os.environ['MY_TOKEN'])\n"
        "sys.exit(5)\n"
    )
    env = {"MY_TOKEN": {"secretRef": {"name": "api", "key": "token"}}}
    step = {
        "name": "s",
        "run": {"image": "img", "command": [sys.executable, "-c", check], "env": env},
    }
    section = {"name": "m", "scope": "micro", "pattern": "sequence", "units": [step]}
    write_work(paths, section, ["img"])
    pod = FakePod(paths, ["img"])
    termination = tmp_path / "termination-log"
    try:
        code = asyncio.run(run_quarterback(paths, pod.swap, str(termination)))
    finally:
        pod.close()
    message = termination.read_text()
    assert code == 1
    assert message.startswith("unit pipe/m/s exited with code 5"), message
    assert "leaking ***" in message
    assert secret not in message
    assert secret not in Path(paths.work, "task.json").read_text()


def test_fromenv_is_refused_in_the_cluster_by_apply_and_by_the_operator(tmp_path: Path) -> None:
    flow = tmp_path / "f.flow.yaml"
    flow.write_text(
        HEADER + "spec:\n  root: {name: s, run: {command: [x], env: {H: {fromEnv: HOME}}}}\n"
    )
    with pytest.raises(FlowInvalid, match="fromEnv: HOME has no meaning in the cluster"):
        flow_resource(compile_plan(flow), "team")
    body = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "f", "namespace": "team"},
        "spec": {
            "root": {"name": "s", "run": {"command": ["x"], "env": {"H": {"fromEnv": "HOME"}}}}
        },
    }
    with pytest.raises(FlowInvalid, match="use secretRef"):
        plan_resource(body, tmp_path)
    assert isinstance(FromEnv("HOME"), FromEnv)


def test_apply_set_makes_the_values_the_resources_inputs_keeping_their_schemas(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "f.flow.yaml"
    flow.write_text(
        HEADER + "spec:\n  inputs:\n"
        "    n: {value: 1, description: how many, schema: {type: integer}}\n"
        "    tags: {schema: {type: array}}\n"
        "  root: {name: s, run: {command: [echo, '{{ inputs.n }}']}}\n"
    )
    resource = flow_resource(compile_plan(flow, parse_sets(["n=3", "tags=[a]"])), "team")
    assert resource["spec"]["inputs"] == {
        "n": {"value": 3, "description": "how many", "schema": {"type": "integer"}},
        "tags": {"value": ["a"], "schema": {"type": "array"}},
    }
    resource["metadata"]["uid"] = "u"
    plan = plan_resource(resource, tmp_path)
    assert plan.template_inputs() == {"n": 3, "tags": ["a"]}
    resource["spec"]["inputs"]["n"]["value"] = "three"
    with pytest.raises(FlowInvalid, match="input 'n': 'three' is not of type 'integer'"):
        plan_resource(resource, tmp_path)
    assert os.path.exists(flow)

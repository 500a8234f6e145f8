"""Dropping a schema into the cluster, as a user with only `kubectl` and `helm` does: install the
chart, `kubectl apply` a MetaSchema holding a published schema and a real document for it, see
the MetaFlow the operator generates appear and succeed on the real node, with outputs equal byte
for byte to those of `meta generate` + `meta run` of the same schema and data here; a description
no generator accepts gets Valid=False, a Warning Event, and no flow."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.kube.cluster.conftest import REPO, Cluster, RealNode
from tests.kube.cluster.operating import META
from tests.kube.cluster.users import install, on_the_real_node, run

CORPUS = REPO / "tests" / "generators" / "corpus"
SCHEMA = CORPUS / "schemas" / "dependabot" / "dependabot.json"
DOCUMENT = CORPUS / "documents" / "dependabot" / "xarray-dependabot.yml"
CHANGED = CORPUS / "documents" / "dependabot" / "nbformat-dependabot.yml"


def kubectl_get(tools: Path, cluster: Cluster, namespace: str, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        run(tools / "kubectl", "get", *what, "-n", namespace, "-o", "json", cluster=cluster)
    )
    return found


def wait_for(what: str, seconds: float, probe: Any) -> Any:
    deadline = time.monotonic() + seconds
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"{what} within {seconds:g} s"
        time.sleep(1)
    return found


def local_run(folder: Path) -> dict[str, Any]:
    """`meta generate` + `meta run` here, of the very files the user dropped; the run's report."""
    for source in (SCHEMA, DOCUMENT):
        shutil.copy(source, folder / source.name)
    for args in (
        ("generate", SCHEMA.name, "--data", DOCUMENT.name, "-o", "flow.yaml"),
        ("run", "flow.yaml", "--workdir", "work"),
    ):
        done = subprocess.run(
            [str(META), *args], cwd=folder, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads((folder / "work" / "report.json").read_text())
    return report


def test_a_schema_dropped_into_the_cluster_runs_as_its_generated_flow_runs_here(
    cluster: Cluster,
    namespace: str,
    real_node: RealNode,
    tools: Path,
    release: str,
    crd: None,
    tmp_path: Path,
) -> None:
    install(tools, cluster, release, namespace, *on_the_real_node(real_node, namespace))
    dropped = tmp_path / "drop"
    dropped.mkdir()
    # The files' texts (their keys' order kept, which the API server would not keep of an
    # object); and a description given as an object, which no generator accepts.
    given = {"schema": SCHEMA.read_text(), "data": DOCUMENT.read_text()}
    refused = {"$schema": "https://example.com/no-such-draft", "title": "nothing to walk"}
    for name, spec in (("deps", given), ("odd", {"schema": refused})):
        resource = {
            "apiVersion": "meta-orchestrator.io/v1alpha1",
            "kind": "MetaSchema",
            "metadata": {"name": name},
            "spec": spec,
        }
        (dropped / f"{name}.yaml").write_text(yaml.safe_dump(resource))
    run(tools / "kubectl", "apply", "-n", namespace, "-f", str(dropped), cluster=cluster)

    def generated() -> str | None:
        status = kubectl_get(tools, cluster, namespace, "metaschema", "deps").get("status") or {}
        return status.get("flow")

    flow_name = wait_for("the operator generates the flow", 120, generated)

    def ended() -> dict[str, Any] | None:
        status = kubectl_get(tools, cluster, namespace, "metaflow", flow_name).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed", "Invalid") else None

    status = wait_for("the generated flow ends", 300, ended)
    assert status["phase"] == "Succeeded", status.get("reason")
    flow = kubectl_get(tools, cluster, namespace, "metaflow", flow_name)
    (owner,) = flow["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("MetaSchema", "deps")
    listed = run(tools / "kubectl", "get", "msc", "-n", namespace, cluster=cluster)
    assert "deps" in listed and "True" in listed and flow_name in listed

    report = local_run(tmp_path)
    assert report["state"] == "succeeded"
    store = real_node.store / flow["metadata"]["uid"]
    compared = 0
    for unit in report["units"]:
        here = tmp_path / "work" / "store" / unit["id"] / "@outputs"
        there = store / unit["id"] / "outputs"
        files = sorted(p.relative_to(here) for p in here.rglob("*") if p.is_file())
        assert files, unit["id"]
        assert files == sorted(p.relative_to(there) for p in there.rglob("*") if p.is_file())
        for file in files:
            assert (there / file).read_bytes() == (here / file).read_bytes(), unit["id"]
            compared += 1
    assert compared == len(report["units"]) >= 4

    # A changed description makes a second flow; the first is kept.
    changed = {"schema": SCHEMA.read_text(), "data": CHANGED.read_text()}
    resource = yaml.safe_load((dropped / "deps.yaml").read_text())
    (dropped / "deps.yaml").write_text(yaml.safe_dump({**resource, "spec": changed}))
    run(tools / "kubectl", "apply", "-n", namespace, "-f", str(dropped), cluster=cluster)
    first = flow_name

    def regenerated() -> str | None:
        name = generated()
        return name if name not in (None, first) else None

    flow_name = wait_for("a second flow", 120, regenerated)
    assert wait_for("the second flow ends", 300, ended)["phase"] == "Succeeded"
    kept = kubectl_get(tools, cluster, namespace, "metaflow", first)
    assert kept["status"]["phase"] == "Succeeded"

    def refusal() -> dict[str, Any] | None:
        status = kubectl_get(tools, cluster, namespace, "metaschema", "odd").get("status") or {}
        return status if status.get("conditions") else None

    (valid,) = wait_for("the refusal", 60, refusal)["conditions"]
    assert valid["status"] == "False"
    assert "no generator understands this description" in valid["message"]
    events = kubectl_get(tools, cluster, namespace, "events")["items"]
    warned = [e for e in events if e["involvedObject"].get("name") == "odd"]
    assert [e["reason"] for e in warned] == ["Refused"]
    flows = kubectl_get(tools, cluster, namespace, "metaflows")["items"]
    names = sorted(f["metadata"]["name"] for f in flows)
    assert names == sorted([first, flow_name]), "no flow for the refused one"

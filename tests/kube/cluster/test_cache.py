"""The cache in the cluster: a second MetaFlow of the same spec makes no pod for a cached step
or a cached micro section; its status counts them as cached and names the flow they came
from, and `meta status` says so. The entries are in the store's `.cache` folder.

The first test's pods land on the kwok node (each succeeds after 1 s, writing nothing), so its
entries hold no outputs; the second runs real pods on the real node, whose outputs go through
the store's cache byte for byte, in macro pods and in a micro pod's quarterback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kube.cluster.conftest import Cluster, RealNode
from tests.kube.cluster.operating import META, Operator, apply, pod_log, wait_phase
from tests.kube.cluster.test_node import (
    FRAMEWORK_IMAGE,
    SAMPLES,
    TIMEOUT,
    operating,
    persisted,
    run_sample_in_cluster,
    sample_image,
)


@pytest.fixture
def operator(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Operator]:
    with Operator(cluster, namespace, tmp_path / "operator.log").running() as running:
        yield running


def step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"image": "busybox", "command": ["sh", "-c", "true"]}, **extra}


def flow(name: str) -> dict[str, Any]:
    micro = {
        "name": "pod",
        "scope": "micro",
        "pattern": "sequence",
        "cache": {"version": "1"},
        "units": [step("one"), step("two")],
    }
    units = [step("a", cache=True), step("b", dependsOn=["a"]), micro]
    return {
        "metadata": {"name": name},
        "spec": {"root": {"name": "root", "scope": "macro", "pattern": "dag", "units": units}},
    }


def test_a_second_flow_of_the_same_spec_makes_no_pod_for_what_the_cache_holds(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, flow("first"))
        first = wait_phase(cluster, namespace, "first", ("Succeeded", "Failed"))
        assert first["status"]["phase"] == "Succeeded", first["status"]
        made_first = set(pods.created.values())
        assert len(made_first) == 3, made_first
        apply(cluster, namespace, flow("second"))
        second = wait_phase(cluster, namespace, "second", ("Succeeded", "Failed"))
    status = second["status"]
    assert status["phase"] == "Succeeded", status
    made_second = set(pods.created.values()) - made_first
    assert len(made_second) == 1 and all("second" in name for name in made_second), made_second
    assert (status["cacheHits"], status["cached"], status["succeeded"]) == (2, 2, 1)
    assert sorted(status["cachedUnits"], key=lambda hit: hit["id"]) == [
        {"id": "second/root/a", "from": f"{namespace}/first"},
        {"id": "second/root/pod", "from": f"{namespace}/first"},
    ]
    shown = subprocess.run(
        [str(META), "status", "second", "-n", namespace],
        env=cluster.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"cached second/root/a (from {namespace}/first)" in shown.stdout
    view = json.loads(
        subprocess.run(
            [str(META), "status", "second", "-n", namespace, "-o", "json"],
            env=cluster.env(), capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert view["units"]["cached"] == 2
    entries = list((operator.log.parent / "store" / ".cache" / "entries").rglob("entry.json"))
    assert len(entries) == 2, "a step and a micro section: one entry each"
    units = {json.loads(entry.read_text())["unit"] for entry in entries}
    assert units == {"first/root/a", "first/root/pod"}


def test_real_pods_reuse_outputs_through_the_stores_cache_in_macro_and_in_a_micro_pod(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    """samples/cached-steps on the real node, three times against one store: as written; as
    another MetaFlow of the same spec (only `publish`, which says `cache: false`, makes a pod;
    the stations' and the summary's outputs are linked from the cache, byte for byte); and with
    its fan-out made a micro section, whose quarterback restores every station step from the
    store's cache inside its pod and runs none of them."""
    source = SAMPLES / "cached-steps"
    flow = yaml.safe_load((source / "cached-steps.flow.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    made: dict[str, set[str]] = {}
    with pod_log(cluster, namespace) as pods:
        for name, scope in (("first", "macro"), ("second", "macro"), ("micro", "micro")):
            folder = tmp_path / name
            shutil.copytree(source, folder)
            flow["metadata"]["name"] = f"cs-{name}"
            stations = flow["spec"]["root"]["units"][0]
            stations["scope"] = scope
            if scope == "micro":
                del stations["cache"]  # the steps inside, one by one, in the pod
            (folder / "cached-steps.flow.yaml").write_text(yaml.safe_dump(flow))
            before = set(pods.created.values())
            found[name] = run_sample_in_cluster(
                cluster, namespace, real_node, folder / "cached-steps.flow.yaml",
                sample_image("cached-steps"), tmp_path / f"{name}.log",
            )  # fmt: skip
            assert found[name]["status"]["phase"] == "Succeeded", found[name]["status"]
            made[name] = {p for p in set(pods.created.values()) - before}
    assert len(made["first"]) == 6
    assert len(made["second"]) == 1
    second = found["second"]["status"]
    assert (second["succeeded"], second["cacheHits"]) == (1, 2), "publish alone ran"
    assert {hit["id"] for hit in second["cachedUnits"]} == {
        "cs-second/weather/stations",
        "cs-second/weather/summary",
    }
    assert {hit["from"] for hit in second["cachedUnits"]} == {f"{namespace}/cs-first"}
    first_out = Path(found["first"]["status"]["outputs"])
    assert (first_out / "published.json").is_file()
    for name in ("second", "micro"):
        theirs = Path(found[name]["status"]["outputs"])
        published = json.loads((theirs / "published.json").read_text())
        assert (
            published["published"]
            == json.loads((first_out / "published.json").read_text())["published"]
        ), name
    restored = persisted(real_node, found["second"], "cs-second/weather/stations")
    assert sorted(p.name for p in restored.iterdir()) == [
        "station-airport", "station-harbour", "station-north", "station-summit",
    ]  # fmt: skip
    micro = found["micro"]["status"]
    assert len(made["micro"]) == 2, "the micro pod, and publish: summary read the same outputs"
    pod_section = next(s for s in micro["sections"] if s["id"] == "cs-micro/weather/stations")
    assert pod_section["unitsRun"] == 0, "no station step ran in the micro pod"
    # The quarterback's hits are the flow's, as the operator's own are: summary's, and the
    # four stations' inside the pod, each from the run that made its entry.
    stations = {hit["id"]: hit["from"] for hit in micro["cachedUnits"]}
    assert stations == {
        **{f"cs-micro/weather/stations/{index}/station-{name}": f"{namespace}/cs-first"
           for index, name in enumerate(("north", "harbour", "airport", "summit"))},
        "cs-micro/weather/summary": f"{namespace}/cs-first",
    }, micro["cachedUnits"]  # fmt: skip
    assert micro["cacheHits"] == 5


def test_meta_cache_ls_and_clear_reach_the_stores_cache_through_a_pod(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    """`meta cache ls|clear -n NS --store-claim PVC` run `meta cache` in a short-lived pod that
    mounts the store: the entry a MetaFlow made is listed, then removed, and no pod is left."""
    write = "import os; open(os.path.join(os.environ['META_OUTPUT'], 'x'), 'w').write('x')"
    flow = {
        "metadata": {"name": "cache-me"},
        "spec": {
            # Micro: the quarterback makes the entry as the pods' user (an operator run on
            # this machine is root here, and the cache's folders are sticky).
            "root": {
                "name": "root",
                "scope": "micro",
                "pattern": "sequence",
                "units": [
                    {"name": "once", "cache": True, "run": {"command": ["python3", "-c", write]}}
                ],
            }
        },
    }
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        found = wait_phase(cluster, namespace, "cache-me", ("Succeeded", "Failed"), TIMEOUT)
    assert found["status"]["phase"] == "Succeeded", found["status"]
    where = [
        "-n", namespace, "--store-claim", real_node.claim, "--image", FRAMEWORK_IMAGE,
        *(f"--node-selector={k}={v}" for k, v in real_node.selector.items()),
    ]  # fmt: skip

    def meta_cache(*args: str) -> Any:
        done = subprocess.run(
            [str(META), "cache", *args, *where, "-o", "json"],
            env=cluster.env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    listed = meta_cache("ls")
    assert [(e["unit"], e["run"], e["bytes"]) for e in listed] == [
        ("cache-me/root/once", f"{namespace}/cache-me", 1)
    ]
    removed = meta_cache("clear")["removed"]
    assert [e["key"] for e in removed] == [listed[0]["key"]]
    assert meta_cache("ls") == []
    assert not list((real_node.store / ".cache" / "entries").rglob("entry.json"))
    core = client.CoreV1Api(cluster.api_client)
    left = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=cache")
    assert left.items == [], "each reading pod is deleted once it has answered"

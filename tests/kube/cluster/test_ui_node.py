"""`meta ui -n NS` on a flow the operator runs on the real node, in a real browser: the run is
listed, its units appear and change state live, and the micro section's pod shows its slots."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.cluster.conftest import Cluster, RealNode
from tests.kube.cluster.operating import apply, wait_phase
from tests.kube.cluster.test_node import FRAMEWORK_IMAGE, TIMEOUT, operating, python_step
from tests.ui.conftest import META
from tests.ui.conftest import page as page  # the browser fixture, from the UI's tests

WAIT_MS = 120_000
NAP = "import time; time.sleep(4)"


@pytest.fixture
def cluster_ui(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    """`meta ui -n NAMESPACE --port 0` against the test cluster; its address."""
    log = tmp_path / "ui.log"
    args = ["ui", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "--port", "0"]
    with log.open("w") as errors:
        process = subprocess.Popen(
            [str(META), *args],
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("meta ui: http://"), line + log.read_text()
    yield line.split()[2]
    process.terminate()
    process.wait(timeout=10)
    print(log.read_text()[-4000:])


def test_the_page_shows_a_cluster_flows_units_live_and_its_micro_pods_slots(
    cluster: Cluster,
    namespace: str,
    real_node: RealNode,
    crd: None,
    tmp_path: Path,
    cluster_ui: str,
    page: Any,
) -> None:
    flow = {
        "metadata": {"name": "seen"},
        "spec": {
            "defaults": {"timeoutSeconds": 120},
            "root": {
                "name": "top",
                "scope": "macro",
                "pattern": "sequence",
                "units": [
                    python_step("first", NAP),
                    {
                        "name": "pod",
                        "scope": "micro",
                        "pattern": "dag",
                        "maxActive": 2,
                        "units": [python_step("left", NAP), python_step("right", NAP)],
                    },
                ],
            },
        },
    }
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        page.goto(cluster_ui)
        page.wait_for_selector('tr[data-run="seen"]', timeout=WAIT_MS)
        page.goto(f"{cluster_ui}#/run/seen")
        page.wait_for_selector('.row.unit[data-unit="seen/top/first"]', timeout=WAIT_MS)
        page.wait_for_selector(
            '.row.unit[data-unit="seen/top/first"][data-state="succeeded"]', timeout=WAIT_MS
        )
        micro = '.row.unit[data-unit="seen/top/pod"][data-state="running"]'
        page.wait_for_selector(micro, timeout=WAIT_MS)
        page.click(micro)
        page.wait_for_selector('#detail .pod .container[data-container^="slot-"]', timeout=WAIT_MS)
        assert page.locator('#detail .pod .container[data-container="quarterback"]').count() == 1
        found = wait_phase(cluster, namespace, "seen", ("Succeeded", "Failed"), TIMEOUT)
        assert found["status"]["phase"] == "Succeeded", found["status"]
        page.wait_for_selector("#run-state.succeeded", timeout=WAIT_MS)
        page.wait_for_selector(
            '.row.unit[data-unit="seen/top/pod"][data-state="succeeded"]', timeout=WAIT_MS
        )

"""`meta run` of a plain flow reaches its first step without the heavy imports it does not need
(issue 17: start-up). benchmarks/bench_startup.py measures the time; this keeps the imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: plain}
spec:
  root:
    name: s
    scope: macro
    pattern: dag
    units:
      - name: a
        run: {command: ["true"]}
"""
HEAVY = (
    "jinja2",
    "jsonschema",
    "rich",
    "pluggy",
    "importlib.metadata",
    "meta.builder",
    "meta.plan.describe",
)
RUN = """\
import json, sys
from meta.cli import main
heavy = sys.argv[3]
sys.argv = ["meta", "run", sys.argv[1], "--workdir", sys.argv[2]]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted(name for name in heavy.split() if name in sys.modules)))
"""


def imported(flow: Path, workdir: Path, cache: Path) -> list[str]:
    environ = {**os.environ, "META_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(flow), str(workdir), " ".join(HEAVY)],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    listed: list[str] = json.loads(done.stdout.splitlines()[-1])
    return listed


def test_a_plain_flow_runs_without_templates_schemas_rich_or_plugins(tmp_path: Path) -> None:
    flow = tmp_path / "plain.flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    # The first run checks the flow against the schema (jsonschema), and remembers it valid.
    assert imported(flow, tmp_path / "w1", tmp_path / "cache") == ["jsonschema"]
    assert imported(flow, tmp_path / "w2", tmp_path / "cache") == []


COLLECTOR = """\
import gc, sys
sys.argv = ["meta", "validate", sys.argv[1]]
import meta
off_while_loading = not gc.isenabled()
from meta.cli import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(off_while_loading, gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_meta_command_loads_with_the_collector_off_and_runs_with_it_on(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "plain.flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR, str(flow)],
        env={**os.environ, "META_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.stdout.splitlines()[-1] == "True True True"

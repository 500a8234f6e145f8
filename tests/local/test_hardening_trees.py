"""Issue 13, item 13: a dfs deeper than ~125 levels, whose node keys (`root.0.0...`) no longer
fit one name of a file system, runs: the local store shortens a name that is too long."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from meta.local.driver import MAX_NAME, on_disk
from tests.local.runs import PY, Env

pytestmark = pytest.mark.e2e
DEPTH = 300


def test_a_tree_300_levels_deep_runs_and_resumes(env: Env) -> None:
    node: dict[str, Any] = {"v": DEPTH}
    for level in range(DEPTH - 1, -1, -1):
        node = {"v": level, "kid": node}
    (env.root / "tree.json").write_text(json.dumps(node))
    write = "import os; open(os.environ['META_OUTPUT'] + '/v', 'w').write('x')"
    flow = env.flow(
        "deep",
        {
            "name": "walk",
            "scope": "macro",
            "pattern": "dfs",
            "maxActive": 8,
            "over": {"input": "tree", "children": "kid"},
            "visit": {"name": "n", "run": {"command": [PY, "-S", "-c", write]}},
        },
        inputs={"tree": {"path": "tree.json"}},
    )
    result = env.meta("run", str(flow), "--workdir", "wd", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((env.root / "wd" / "report.json").read_text())
    deepest = max(report["units"], key=lambda unit: len(unit["id"]))
    assert len(deepest["id"]) > 2 * DEPTH
    assert os.path.isfile(os.path.join(env.root, deepest["outputs"], "v"))
    again = env.meta("resume", "wd", timeout=300)
    assert again.returncode == 0, again.stderr
    assert "ran again" not in again.stderr


def test_names_too_long_for_a_file_system_are_shortened_and_stay_distinct() -> None:
    assert on_disk("f/s/root.0/n") == "f/s/root.0/n"
    long_a, long_b = "root" + ".0" * 200, "root" + ".0" * 199 + ".1"
    shortened = {on_disk(f"f/{key}/n") for key in (long_a, long_b)}
    assert len(shortened) == 2
    assert all(len(name.encode()) <= MAX_NAME for path in shortened for name in path.split("/"))

"""Step results and `when` with real processes: META_RESULT, skipped units in the journal, the
report and `meta status`, results that fail an attempt, and resume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.local.runs import Env, journal, report, step, units_by_id

pytestmark = pytest.mark.e2e

# Writes argv[1] (JSON text) to META_RESULT, the names in META_UPSTREAM to its outputs.
EMIT = r"""
import os, sys
from pathlib import Path
import steplib

steplib.log_run()
Path(os.environ["META_OUTPUT"], "upstream.txt").write_text(
    " ".join(sorted(os.listdir(os.environ["META_UPSTREAM"]))) + "\n"
)
if len(sys.argv) > 1:
    Path(os.environ["META_RESULT"]).write_text(sys.argv[1])
"""


def emit(name: str, result: str | None = None, **extra: Any) -> dict[str, Any]:
    return step(name, "emit.py", *([result] if result is not None else []), **extra)


def gate_flow(scope: str) -> dict[str, Any]:
    return {
        "name": "d",
        "scope": scope,
        "pattern": "dag",
        "units": [
            emit("check", '{"changed": false, "n": 2}'),
            emit("build", dependsOn=["check"], when="{{ upstream.check.result.changed }}"),
            emit(
                "after",
                '"{{ upstream.build.state }}-{{ upstream.check.result.n }}"',
                dependsOn=["check", "build"],
            ),
        ],
    }


@pytest.mark.parametrize("scope", ["macro", "micro"])
def test_a_result_decides_a_when_and_the_skip_is_recorded_everywhere(env: Env, scope: str) -> None:
    env.script("emit.py", EMIT)
    flow = env.flow("gate", gate_flow(scope))
    ran = env.meta("run", str(flow), "--workdir", "w")
    assert ran.returncode == 0, ran.stderr
    assert "gate: succeeded (2 units run, 1 skipped)" in ran.stdout
    assert 'result: "skipped-2"' in ran.stdout
    assert env.runs() == ["gate/d/check", "gate/d/after"]

    units = units_by_id(report(env.root / "w"))
    assert units["gate/d/check"]["result"] == {"changed": False, "n": 2}
    build = units["gate/d/build"]
    assert (build["state"], build["reason"], build["attempts"], build["outputs"]) == (
        "skipped",
        "condition",
        0,
        None,
    )
    assert report(env.root / "w")["result"] == "skipped-2"
    # The skipped unit is not among the after unit's upstream folders.
    after = units["gate/d/after"]["outputs"]
    assert (env.root / after / "upstream.txt").read_text() == "check\n"

    records = {r["id"]: r for r in journal(env.root / "w") if r["event"] == "finished"}
    assert records["gate/d/build"]["state"] == "skipped"
    assert records["gate/d/check"]["result"] == {"changed": False, "n": 2}

    status = json.loads(env.meta("status", "w", "-o", "json").stdout)
    assert status["units"]["skipped"] == 1 and status["units"]["succeeded"] == 2
    assert status["result"] == "skipped-2"
    text = env.meta("status", "w").stdout
    assert "1 skipped" in text and 'result: "skipped-2"' in text


def test_a_true_condition_runs_the_unit(env: Env) -> None:
    env.script("emit.py", EMIT)
    flow = env.flow(
        "go",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "sequence",
            "units": [emit("a", "[1, 2]"), emit("b", when="upstream.a.result | length == 2")],
        },
    )
    assert env.meta("run", str(flow), "--workdir", "w").returncode == 0
    assert env.runs() == ["go/s/a", "go/s/b"]


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("x" * (64 * 1024 + 1), "is 65537 bytes; a result holds at most 65536 (64 KiB)"),
        ("{not json", "is not JSON"),
        ("NaN", "is not JSON"),
        # Past the interpreter's recursion limit, and past the 256 levels a result may nest.
        ("[" * 1200 + "]" * 1200, "is nested too deeply: a result nests at most 256 levels"),
        ("[" * 300 + "]" * 300, "is nested too deeply: a result nests at most 256 levels"),
    ],
)
def test_a_result_too_big_or_not_json_fails_the_attempt(
    env: Env, written: str, reason: str
) -> None:
    env.script("emit.py", EMIT)
    env.script("big.txt", written)
    writer = step(
        "w",
        "-c",
        "import os, shutil; shutil.copy('big.txt', os.environ['META_RESULT'])",
    )
    flow = env.flow(
        "big", {"name": "s", "scope": "macro", "pattern": "sequence", "units": [writer]}
    )
    ran = env.meta("run", str(flow), "--workdir", "w")
    assert ran.returncode == 1, ran.stderr
    failed = units_by_id(report(env.root / "w"))["big/s/w"]
    assert failed["state"] == "failed"
    assert failed["reason"].startswith("exited with code 0, but its result ($META_RESULT) ")
    assert reason in failed["reason"]
    assert reason in ran.stderr
    resumed = env.meta("resume", "w")
    assert resumed.returncode == 1, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert reason in resumed.stderr


@pytest.mark.parametrize("scope", ["macro", "micro"])
def test_a_result_that_is_a_fifo_or_a_link_fails_the_attempt_at_once(env: Env, scope: str) -> None:
    """A FIFO at META_RESULT (or at the step's stderr log) blocked meta for good, past Ctrl-C."""
    fifo = (
        "import os; os.mkfifo(os.environ['META_RESULT']);"
        "err = os.path.join(os.path.dirname(os.environ['META_RESULT']), "
        "os.environ['META_ATTEMPT'] + '.err'); os.path.exists(err) and os.unlink(err);"
        "os.path.exists(os.path.dirname(err)) and os.mkfifo(err); raise SystemExit(0)"
    )
    link = "import os; os.symlink('/dev/zero', os.environ['META_RESULT'])"
    units = [step("fifo", "-c", fifo), step("link", "-c", link)]
    flow = env.flow(
        "odd",
        {"name": "s", "scope": scope, "pattern": "dag", "onFailure": "continue", "units": units},
    )
    ran = env.meta("run", str(flow), "--workdir", "w", timeout=30)
    assert ran.returncode == 1, ran.stderr
    units_run = units_by_id(report(env.root / "w"))
    assert units_run["odd/s/fifo"]["reason"] == (
        "exited with code 0, but its result ($META_RESULT) is a FIFO, not a file"
    )
    assert units_run["odd/s/link"]["reason"] == (
        "exited with code 0, but its result ($META_RESULT) is a symbolic link, not a file"
    )


def test_a_log_the_step_replaced_by_a_link_is_not_kept(env: Env) -> None:
    """What the link leads to is not what the step wrote."""
    secret = env.root / "secret.txt"
    secret.write_text("not the step's\n")
    link = (
        "import os, sys; d = os.path.dirname(os.environ['META_RESULT']);"
        "err = os.path.join(d, os.environ['META_ATTEMPT'] + '.err'); os.unlink(err);"
        f"os.symlink({str(secret)!r}, err); sys.exit(3)"
    )
    flow = env.flow("ln", step("s", "-c", link))
    ran = env.meta("run", str(flow), "--workdir", "w")
    assert ran.returncode == 1, ran.stderr
    assert not list((env.root / "w" / "logs").rglob("*.err"))
    assert "not the step's" not in ran.stderr


def test_a_failed_attempts_result_is_not_the_next_ones(env: Env) -> None:
    env.script(
        "flaky.py",
        r"""
import os, sys
from pathlib import Path
if os.environ["META_ATTEMPT"] == "1":
    Path(os.environ["META_RESULT"]).write_text('"from the failed attempt"')
    sys.exit(3)
""",
    )
    flow = env.flow(
        "f",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("a", "flaky.py", retries=1)],
        },
        defaults={"retryBackoffSeconds": 0},
    )
    assert env.meta("run", str(flow), "--workdir", "w").returncode == 0
    unit = units_by_id(report(env.root / "w"))["f/s/a"]
    assert unit["attempts"] == 2 and "result" not in unit


def test_resume_runs_neither_a_skipped_unit_nor_one_whose_result_it_kept(env: Env) -> None:
    env.script("emit.py", EMIT)
    env.script(
        "gate.py",
        "import sys\nfrom pathlib import Path\nsys.exit(0 if Path('fixed').exists() else 5)\n",
    )
    flow = gate_flow("macro")
    flow["units"].append(step("last", "gate.py", dependsOn=["after"]))
    path = env.flow("gate", flow)
    assert env.meta("run", str(path), "--workdir", "w").returncode == 1
    (env.root / "fixed").write_text("")
    resumed = env.meta("resume", "w")
    assert resumed.returncode == 0, resumed.stderr
    assert env.runs() == ["gate/d/check", "gate/d/after"]
    units = units_by_id(report(env.root / "w"))
    assert units["gate/d/build"]["state"] == "skipped"
    assert units["gate/d/check"]["result"] == {"changed": False, "n": 2}
    assert units["gate/d/check"]["resumed"] is True
    status = json.loads(env.meta("status", "w", "-o", "json").stdout)
    assert status["units"] == {
        "succeeded": 1, "failed": 0, "cancelled": 0, "cached": 2, "running": 0, "skipped": 1
    }  # fmt: skip


def test_a_fanout_over_a_result_in_a_micro_section(env: Env) -> None:
    env.script("emit.py", EMIT)
    flow = env.flow(
        "fan",
        {
            "name": "s",
            "scope": "micro",
            "pattern": "sequence",
            "units": [
                emit("list", '{"xs": ["a", "b", "c"]}'),
                {
                    "name": "each",
                    "scope": "micro",
                    "pattern": "fanout",
                    "over": {"result": "list", "path": "/xs"},
                    "visit": emit("v-{{ item }}", '"{{ item }}{{ index }}"', when="item != 'b'"),
                },
            ],
        },
    )
    ran = env.meta("run", str(flow), "--workdir", "w")
    assert ran.returncode == 0, ran.stderr
    document = report(env.root / "w")
    assert document["result"] == {"v-a": "a0", "v-c": "c2"}
    assert units_by_id(document)["fan/s/each/1/v-b"]["state"] == "skipped"
    assert sorted(p.name for p in (env.root / document["outputs"]).iterdir()) == ["v-a", "v-c"]

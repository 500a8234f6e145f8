"""`meta resume`: user errors, a finished run resumed, and `kill -9` at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.local.runs import Env, alive, journal, report, step, units_by_id, wait_for, wait_gone

pytestmark = pytest.mark.e2e

# Every step adds up the values its upstream left and one of its own; outputs are deterministic.
CALC = r"""
import json, os, sys
from pathlib import Path
import steplib

steplib.log_run()
mode = sys.argv[1]
data = json.loads(Path(os.environ["META_INPUT"]).read_text())
upstream = Path(os.environ["META_UPSTREAM"])
total = sum(int((d / "value.txt").read_text()) for d in sorted(upstream.iterdir()))
if mode == "node":
    total += data.get("value", 0)
elif mode == "square":
    total += data * data
else:
    total += int(mode)
out = Path(os.environ["META_OUTPUT"])
(out / "value.txt").write_text(f"{total}\n")
(out / "who.txt").write_text(steplib.UNIT + "\n")
"""


def _tree(depth: int, value: int = 1) -> dict[str, Any]:
    node: dict[str, Any] = {"value": value}
    if depth:
        node["kids"] = [_tree(depth - 1, value * 2 + i) for i in range(2)]
    return node


def _calc_flow(env: Env) -> tuple[Path, int]:
    """A flow of 41 steps: a micro post-order dfs (15), a fanout + gather (13), a chain (10),
    a micro dag with two sinks (3); its number of steps."""
    env.script("calc.py", CALC)
    (env.root / "tree.json").write_text(json.dumps(_tree(3)))
    calc = ("calc.py",)
    flow = env.flow(
        "calc",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                {
                    "name": "tree",
                    "scope": "micro",
                    "pattern": "dfs",
                    "order": "post",
                    "over": {"input": "tree", "children": "kids"},
                    "visit": step("node", *calc, "node"),
                },
                {
                    "name": "fan",
                    "scope": "macro",
                    "pattern": "fanout",
                    "maxActive": 3,
                    "over": {"input": "items"},
                    "visit": step("sq", *calc, "square"),
                    "gather": step("total", *calc, "0"),
                },
                {
                    "name": "chain",
                    "scope": "macro",
                    "pattern": "sequence",
                    "units": [step(f"c{i}", *calc, str(i)) for i in range(10)],
                },
                {
                    "name": "finish",
                    "scope": "micro",
                    "pattern": "dag",
                    "units": [
                        step("a", *calc, "1"),
                        step("b", *calc, "2", dependsOn=["a"]),
                        step("c", *calc, "3", dependsOn=["a"]),
                    ],
                },
            ],
        },
        inputs={"tree": {"path": "tree.json"}, "items": {"value": list(range(1, 13))}},
        defaults={"timeoutSeconds": 60},
    )
    return flow, 15 + 13 + 10 + 3


def _store(workdir: Path) -> dict[str, bytes]:
    """Every file (its bytes) and link (its target) under the store, `.partial` aside."""
    store = workdir / "store"
    found: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not (Path(folder) == store and d == ".partial")]
        for name in files + [d for d in dirs if Path(folder, d).is_symlink()]:
            path = Path(folder, name)
            rel = str(path.relative_to(store))
            found[rel] = (
                b"-> " + os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            )
    return found


def _finished(workdir: Path) -> set[str]:
    done: set[str] = set()
    for entry in journal(workdir):
        if entry["event"] == "finished":
            (done.add if entry["state"] == "succeeded" else done.discard)(entry["id"])
    return done


def test_resume_without_a_run_is_a_user_error(env: Env) -> None:
    (env.root / "empty").mkdir()
    done = env.meta("resume", str(env.root / "empty"))
    assert done.returncode == 2
    assert "no run here" in done.stderr
    assert "Traceback" not in done.stderr
    done = env.meta("resume", str(env.root / "missing"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_resume_after_the_flow_changed_is_refused(env: Env) -> None:
    flow, _ = _calc_flow(env)
    workdir = env.root / "wd"
    assert env.meta("run", str(flow), "--workdir", str(workdir)).returncode == 0
    before = len(env.runs())
    flow.write_text(flow.read_text() + "\n# changed\n")
    done = env.meta("resume", str(workdir))
    assert done.returncode == 2
    assert "the flow changed" in done.stderr
    assert flow.name in done.stderr
    assert len(env.runs()) == before


def test_resume_says_which_input_files_changed_since_the_run_started(env: Env) -> None:
    # The item "bad" fails until the data is mended: a mended file is how such a run is
    # finished, so resume goes on, and says what the units that finished before were made from.
    env.script(
        "item.py",
        "import json, os, sys\nsys.exit(json.load(open(os.environ['META_INPUT'])) == 'bad')\n",
    )
    (env.root / "items.json").write_text(json.dumps(["a", "bad"]))
    (env.root / "other.json").write_text(json.dumps(["x"]))
    root = {
        "name": "each",
        "scope": "macro",
        "pattern": "fanout",
        "onFailure": "continue",
        "over": {"input": "items"},
        "visit": step("v-{{ index }}", "item.py"),
    }
    flow = env.flow(
        "mend", root, inputs={"items": {"path": "items.json"}, "other": {"path": "other.json"}}
    )
    workdir = env.root / "wd"
    assert env.meta("run", str(flow), "--workdir", str(workdir)).returncode == 1
    (env.root / "items.json").write_text(json.dumps(["a", "mended"]))
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("note: input file") == 1
    assert "items.json changed since this run started" in done.stderr
    assert report(workdir)["changedInputs"] == [str(env.root / "items.json")]
    again = env.meta("resume", str(workdir))
    assert "note: input file" in again.stderr, "it is still not what the first session read"
    unchanged = env.root / "wd2"
    assert env.meta("run", str(flow), "--workdir", str(unchanged)).returncode == 0
    done = env.meta("resume", str(unchanged))
    assert done.returncode == 0 and "note:" not in done.stderr
    assert "changedInputs" not in report(unchanged)


def test_a_finished_run_resumed_runs_nothing(env: Env) -> None:
    flow, steps = _calc_flow(env)
    workdir = env.root / "wd"
    assert env.meta("run", str(flow), "--workdir", str(workdir)).returncode == 0
    first = report(workdir)
    store = _store(workdir)
    runs = env.runs()
    assert len(runs) == steps

    done = env.meta("resume", str(workdir), "--report", str(env.root / "again.json"))
    assert done.returncode == 0, done.stderr
    assert env.runs() == runs
    assert f"0 units run, {steps} finished before" in done.stdout
    again = json.loads((env.root / "again.json").read_text())
    assert again == report(workdir)
    assert again["state"] == "succeeded"
    assert len(again["units"]) == steps
    assert all(unit.get("resumed") is True for unit in again["units"])
    assert again["bytesPersisted"] == 0
    assert again["outputs"] == first["outputs"]
    assert _store(workdir) == store
    # A run that is done still refuses a second `meta run` into its workdir.
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 2
    assert "meta resume" in done.stderr


def test_kill_9_at_random_moments_then_resume(env: Env) -> None:
    seed = int(os.environ.get("META_TEST_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    flow, steps = _calc_flow(env)

    # An uninterrupted run, for the outputs and its length.
    base = replace(env, log=env.root / "base.log", started=[])
    began = time.monotonic()
    done = base.meta("run", str(flow), "--workdir", str(env.root / "base"))
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    expected = _store(env.root / "base")
    assert Counter(base.runs()) == Counter({uid: 1 for uid in base.runs()})
    assert len(base.runs()) == steps

    workdir = env.root / "wd"
    command = ["run", str(flow), "--workdir", str(workdir)]
    checkpoints: list[tuple[set[str], Counter[str]]] = []
    mid_run = 0
    for i in range(5):
        already = len(_finished(workdir))
        if already >= steps - 3:
            break
        process = env.start(*command, tag=f"kill{i}")
        if i % 3 == 2:
            time.sleep(rng.uniform(0, took * 0.6))  # any moment, start-up included
        else:
            target = rng.randint(already + 1, min(steps - 3, already + steps // 4))

            def reached(target: int = target, process: subprocess.Popen[bytes] = process) -> bool:
                return len(_finished(workdir)) >= target or process.poll() is not None

            wait_for(reached, 30, f"{target} units to finish (seed {seed})")
            time.sleep(rng.uniform(0, 0.02))
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=10)
        finished = _finished(workdir)
        checkpoints.append((finished, Counter(env.runs())))
        mid_run += code == -signal.SIGKILL and 0 < len(finished) < steps
        if (workdir / "run.json").exists():
            command = ["resume", str(workdir)]
        if code == 0:
            break
    assert mid_run >= 2, f"the kills missed the run (seed {seed})"

    done = env.meta(*command)
    assert done.returncode == 0, f"seed {seed}: {done.stderr}"
    document = report(workdir)
    assert document["state"] == "succeeded"
    assert all(unit["state"] == "succeeded" for unit in document["units"])
    assert len(document["units"]) == steps

    final = Counter(env.runs())
    assert set(final) == set(base.runs())
    for finished, counts in checkpoints:
        for uid in finished:
            assert final[uid] == counts[uid], f"{uid} ran again after it finished (seed {seed})"
    assert _store(workdir) == expected, f"seed {seed}"
    leftovers = [p for p in (workdir / "store/.partial").rglob("*") if not p.is_dir()]
    assert leftovers == [], f"seed {seed}"


# Runs long (with a grandchild) while the HOLD file exists; quick once it is gone.
LONG = r"""
import os
from pathlib import Path
import steplib

steplib.log_run()
if Path(os.environ["T_LOG"]).with_name("hold").exists():
    steplib.spawn_grandchild_and_sleep()
Path(os.environ["META_OUTPUT"], "long.txt").write_text(steplib.UNIT)
"""


def test_steps_of_a_killed_run_are_stopped_by_resume(env: Env) -> None:
    """`kill -9` gives the driver no chance to stop its steps (each is its own session): they
    outlive it. The next session of the same workdir must kill them before running anything,
    or they race the resumed steps for the same outputs."""
    env.script("long.py", LONG)
    flow = env.flow(
        "orphans",
        {
            "name": "work",
            "scope": "macro",
            "pattern": "dag",
            "units": [step("longA", "long.py"), step("longB", "long.py")],
        },
    )
    workdir = env.root / "wd"
    hold = env.root / "hold"
    hold.touch()
    process = env.start("run", str(flow), "--workdir", str(workdir))
    wait_for(lambda: len(env.recorded_pids()) == 2, 15, "both steps to run")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    orphans = env.all_pids()
    assert len(orphans) == 4
    time.sleep(0.2)
    assert all(alive(pid) for pid in orphans), "the killed run's steps outlive it"

    hold.unlink()
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr
    assert wait_gone(orphans, timeout=1) == []
    assert units_by_id(report(workdir))["orphans/work/longA"]["state"] == "succeeded"


def test_a_condition_over_units_finished_before_decides_as_in_one_uninterrupted_run(
    env: Env,
) -> None:
    # `check` fails in the first session; resumed, `test` (finished before) reads `succeeded`
    # and `deploy` runs, as it does in a run that was never interrupted.
    env.script("check.py", "import os, sys\nsys.exit(0 if os.path.exists('ok') else 3)\n")
    deploy = step("deploy", "-c", "pass", dependsOn=["test", "check"])
    deploy["when"] = "{{ upstream.test.state == 'succeeded' and upstream.test.cached }}"
    root = {
        "name": "release",
        "scope": "macro",
        "pattern": "dag",
        "units": [
            step("test", "-c", "pass"),
            step("check", "check.py", dependsOn=["test"]),
            deploy,
        ],
    }
    flow = env.flow("gate", root)
    workdir = env.root / "wd"
    assert env.meta("run", str(flow), "--workdir", str(workdir)).returncode == 1
    (env.root / "ok").touch()
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr
    states = {unit["id"]: unit["state"] for unit in report(workdir)["units"]}
    assert states["gate/release/deploy"] == "succeeded", states

"""onFailure: continue, finally units and every attempt in the report, with real processes."""

from __future__ import annotations

import json

import pytest

from tests.local.runs import Env, report, step, units_by_id

pytestmark = pytest.mark.e2e

# Writes its argv[1] (or "ok") to its outputs; fails when argv[1] is "fail", or while the
# file named by argv[2] is missing.
WORK = r"""
import os, sys, time
from pathlib import Path
import steplib

steplib.log_run()
what = sys.argv[1] if len(sys.argv) > 1 else "ok"
if what == "fail" or (len(sys.argv) > 2 and not Path(sys.argv[2]).exists()):
    sys.stderr.write(f"work: {os.environ['META_UNIT_ID']} gives up\n")
    sys.exit(4)
if what == "sleep":
    sys.stderr.write("work: about to sleep\n")
    sys.stderr.flush()
    time.sleep(30)
scratch = os.environ.get("META_SCRATCH")
if scratch:
    Path(scratch, "seen.txt").write_text(os.environ["META_UNIT_ID"])
Path(os.environ["META_OUTPUT"], "out.txt").write_text(what)
"""

# What a finally unit saw: its env (the templated states), its upstream folders, the scratch.
SEEN = r"""
import json, os
from pathlib import Path
import steplib

steplib.log_run()
shared = Path(os.environ["META_SCRATCH"], "seen.txt")
seen = {
    "states": os.environ.get("STATES"),
    "failures": os.environ.get("FAILURES"),
    "upstream": sorted(os.listdir(os.environ["META_UPSTREAM"])),
    "scratch": shared.read_text() if shared.exists() else None,
}
Path(os.environ["META_OUTPUT"], "seen.json").write_text(json.dumps(seen))
"""

STATES = "{% for name, unit in upstream | dictsort %}{{ name }}={{ unit.state }} {% endfor %}"
FAILURES = "{{ failures | map(attribute='unit') | join(',') }}"


def seen(workdir, uid: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((workdir / "store" / uid / "@outputs" / "seen.json").read_text())


def reporting(name: str) -> dict:  # type: ignore[no-untyped-def]
    unit = step(name, "seen.py")
    unit["run"]["env"] = {**unit["run"].get("env", {}), "STATES": STATES, "FAILURES": FAILURES}
    return unit


def test_continue_runs_every_independent_unit_and_finally_sees_the_states(env: Env) -> None:
    env.script("work.py", WORK)
    env.script("seen.py", SEEN)
    root = {
        "name": "d",
        "scope": "macro",
        "pattern": "dag",
        "onFailure": "continue",
        "units": [
            step("a", "work.py", "fail"),
            step("b", "work.py", dependsOn=["a"]),
            step("c", "work.py"),
            step("e", "work.py", "fail"),
        ],
        "finally": [reporting("report")],
    }
    flow = env.flow("cont", root, **{"finally": [reporting("notify")]})
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 1, done.stderr
    assert "failed: cont/d/a" in done.stderr and "failed: cont/d/e" in done.stderr
    assert "1 units skipped" in done.stderr
    assert "cont: failed (5 units run, 2 failed, 1 skipped)" in done.stdout
    document = report(workdir)
    units = units_by_id(document)
    assert {uid: unit["state"] for uid, unit in units.items()} == {
        "cont/d/a": "failed",
        "cont/d/b": "skipped",
        "cont/d/c": "succeeded",
        "cont/d/e": "failed",
        "cont/d/finally/report": "succeeded",
        "cont/finally/notify": "succeeded",
    }
    assert units["cont/d/b"]["reason"] == "upstream-failed"
    assert sorted(f["unit"] for f in document["error"]["failures"]) == ["cont/d/a", "cont/d/e"]
    inner = seen(workdir, "cont/d/finally/report")
    assert inner["states"] == "a=failed b=skipped c=succeeded e=failed "
    assert sorted(inner["failures"].split(",")) == ["cont/d/a", "cont/d/e"]
    assert inner["upstream"] == ["c"]
    outer = seen(workdir, "cont/finally/notify")
    assert outer["states"] == "d=failed "
    status = json.loads(env.meta("status", str(workdir), "-o", "json").stdout)
    assert status["units"]["skipped"] == 1
    assert sorted(status["failedUnits"]) == ["cont/d/a", "cont/d/e"]


def test_finally_of_a_micro_section_runs_in_its_pod_after_a_failure(env: Env) -> None:
    env.script("work.py", WORK)
    env.script("seen.py", SEEN)
    root = {
        "name": "pod",
        "scope": "micro",
        "pattern": "sequence",
        "units": [step("first", "work.py"), step("second", "work.py", "fail")],
        "finally": [reporting("logs")],
    }
    workdir = env.root / "wd"
    done = env.meta("run", str(env.flow("micro", root)), "--workdir", str(workdir))
    assert done.returncode == 1, done.stderr
    assert report(workdir)["error"]["unit"] == "micro/pod/second"
    logs = seen(workdir, "micro/pod/finally/logs")
    assert logs["scratch"] == "micro/pod/first"
    assert logs["states"] == "first=succeeded second=failed "


def test_a_section_in_finally_runs_whole_after_a_failure_and_sees_it(env: Env) -> None:
    env.script("work.py", WORK)
    env.script("seen.py", SEEN)
    cleanup = {
        "name": "cleanup",
        "scope": "micro",
        "pattern": "sequence",
        "units": [reporting("look"), step("tidy", "work.py")],
    }
    root = {
        "name": "d",
        "scope": "macro",
        "pattern": "dag",
        "units": [step("a", "work.py"), step("b", "work.py", "fail", dependsOn=["a"])],
        "finally": [cleanup],
    }
    workdir = env.root / "wd"
    done = env.meta("run", str(env.flow("sect", root)), "--workdir", str(workdir))
    assert done.returncode == 1, done.stderr
    units = units_by_id(report(workdir))
    assert units["sect/d/finally/cleanup/look"]["state"] == "succeeded"
    assert units["sect/d/finally/cleanup/tidy"]["state"] == "succeeded"
    look = seen(workdir, "sect/d/finally/cleanup/look")
    assert look["states"] == "a=succeeded b=failed "
    assert look["failures"] == "sect/d/b"
    assert look["upstream"] == ["a"]


def test_a_fault_in_a_finally_unit_keeps_the_failure_first_and_the_others_run(env: Env) -> None:
    env.script("work.py", WORK)
    env.script("seen.py", SEEN)
    notify = step("notify", "work.py", "{{ upstream.build.result.count }}")
    root = {"name": "build", "scope": "macro", "pattern": "sequence"}
    root["units"] = [step("compile", "work.py", "fail")]
    flow = env.flow("fin", root, **{"finally": [notify, reporting("after")]})
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 1, done.stderr
    document = report(workdir)
    assert document["error"]["unit"] == "fin/build/compile"
    units = units_by_id(document)
    assert units["fin/finally/notify"]["state"] == "failed"
    assert "has no attribute 'count'" in units["fin/finally/notify"]["reason"]
    assert seen(workdir, "fin/finally/after")["failures"] == "fin/build/compile,fin/finally/notify"
    status = json.loads(env.meta("status", str(workdir), "-o", "json").stdout)
    assert status["failedUnit"] == "fin/build/compile"
    assert sorted(status["failedUnits"]) == ["fin/build/compile", "fin/finally/notify"]
    logs = env.meta("logs", str(workdir), "fin/finally/notify")
    assert logs.returncode == 2, logs.stderr
    assert "unit fin/finally/notify failed before it started (" in logs.stderr
    assert logs.stderr.rstrip().endswith("it never ran and has no logs")


def test_the_report_keeps_every_attempt_and_why_it_ended(env: Env) -> None:
    env.script("work.py", WORK)
    flow = env.flow(
        "tries",
        step("slow", "work.py", "sleep", timeoutSeconds=1, retries=1),
        defaults={"retryBackoffSeconds": 0.01},
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir), timeout=30)
    assert done.returncode == 1, done.stderr
    history = units_by_id(report(workdir))["tries/slow"]["history"]
    assert [(h["attempt"], h["state"]) for h in history] == [(1, "failed"), (2, "failed")]
    assert all(h["reason"].startswith("timed out") for h in history)
    assert all("about to sleep" in h["stderrTail"] for h in history)
    assert all(h["finishedAt"] >= h["startedAt"] for h in history)


def test_resume_runs_what_failed_then_finally_again_and_keeps_earlier_attempts(env: Env) -> None:
    env.script("work.py", WORK)
    env.script("seen.py", SEEN)
    marker = env.root / "fixed"
    root = {
        "name": "s",
        "scope": "macro",
        "pattern": "sequence",
        "units": [step("a", "work.py"), step("b", "work.py", "ok", str(marker))],
    }
    flow = env.flow("again", root, **{"finally": [reporting("notify")]})
    workdir = env.root / "wd"
    first = env.meta("run", str(flow), "--workdir", str(workdir))
    assert first.returncode == 1, first.stderr
    assert seen(workdir, "again/finally/notify")["states"] == "s=failed "
    marker.write_text("")
    second = env.meta("resume", str(workdir))
    assert second.returncode == 0, second.stderr
    units = units_by_id(report(workdir))
    assert units["again/s/a"].get("resumed") is True
    history = units["again/s/b"]["history"]
    assert [(h["attempt"], h["state"]) for h in history] == [(1, "failed"), (2, "succeeded")]
    assert seen(workdir, "again/finally/notify")["states"] == "s=succeeded "
    # The resumed session numbered on: the first session's logs are kept, not written over.
    earlier = env.meta("logs", str(workdir), "again/s/b", "--attempt", "1")
    assert earlier.returncode == 0, earlier.stderr
    assert "work: again/s/b gives up" in earlier.stdout + earlier.stderr


def test_the_failure_summary_counts_only_the_units_a_failure_skipped(env: Env) -> None:
    env.script("work.py", WORK)
    root = {
        "name": "d",
        "scope": "macro",
        "pattern": "dag",
        "onFailure": "continue",
        "units": [
            step("a", "work.py", "fail"),
            step("b", "work.py", dependsOn=["a"]),
            step("off", "work.py", when="{{ false }}"),
            step("also-off", "work.py", when="{{ false }}"),
        ],
    }
    done = env.meta("run", str(env.flow("sk", root)), "--workdir", str(env.root / "wd"))
    assert done.returncode == 1, done.stderr
    assert "1 units skipped: a unit they depend on failed" in done.stderr
    assert "sk: failed (1 units run, 1 failed, 3 skipped)" in done.stdout
    (section,) = report(env.root / "wd")["sections"]
    assert (section["id"], section["state"], section["unitsRun"]) == ("sk/d", "failed", 4)
    status = env.meta("status", str(env.root / "wd"))
    # Units skipped because a unit they depend on failed never ran: not counted in the peak.
    assert "section sk/d: dag (macro), peak 1/4, 4 units, failed" in status.stdout

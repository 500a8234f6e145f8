"""Ctrl-C, SIGTERM and SIGHUP: exit 130 (143, 129), no process left behind, and `meta resume`
finishes."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.local.runs import Env, report, step, units_by_id, wait_for, wait_gone

pytestmark = pytest.mark.e2e

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

GATHER = r"""
import json, os
from pathlib import Path
import steplib

steplib.log_run()
up = Path(os.environ["META_UPSTREAM"])
listing = {e.name: sorted(p.name for p in e.iterdir()) for e in sorted(up.iterdir())}
Path(os.environ["META_OUTPUT"], "listing.json").write_text(json.dumps(listing, sort_keys=True))
"""

QUICK = r"""
import os
from pathlib import Path
import steplib

steplib.log_run()
Path(os.environ["META_OUTPUT"], "quick.txt").write_text(steplib.UNIT)
"""

# Fails while the HOLD file exists.
FAIL_WHILE_HELD = r"""
import os
from pathlib import Path
import steplib

steplib.log_run()
if Path(os.environ["T_LOG"]).with_name("hold").exists():
    raise SystemExit(1)
"""

# Runs while the HOLD file exists, and takes SIGTERM as nothing (SIGKILL ends it).
STUBBORN = r"""
import os, signal, time
from pathlib import Path
import steplib

steplib.log_run()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
steplib.note_pids(os.getpid())
while Path(os.environ["T_LOG"]).with_name("hold").exists():
    time.sleep(0.05)
"""


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_interrupt_leaves_no_process_and_resume_finishes(env: Env, sig: signal.Signals) -> None:
    env.script("long.py", LONG)
    env.script("quick.py", QUICK)
    flow = env.flow(
        "stop",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                step("prep", "quick.py"),
                {
                    "name": "work",
                    "scope": "macro",
                    "pattern": "dag",
                    "units": [step("longA", "long.py"), step("longB", "long.py")],
                },
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "fanin",
                    "units": [step("longC", "long.py"), step("quickD", "quick.py")],
                    "gather": step("sum", "quick.py"),
                },
                step("final", "quick.py"),
            ],
        },
    )
    workdir = env.root / "wd"
    hold = env.root / "hold"
    hold.touch()

    process = env.start("run", str(flow), "--workdir", str(workdir))
    wait_for(lambda: len(env.recorded_pids()) == 2, 15, "longA and longB to run")
    process.send_signal(sig)
    assert process.wait(timeout=15) == 128 + sig, (env.root / "meta.err").read_text()
    assert "interrupted" in (env.root / "meta.err").read_text()
    pids = env.all_pids()
    assert len(pids) == 4
    assert wait_gone(pids) == []
    document = report(workdir)
    assert document["state"] == "cancelled"
    units = units_by_id(document)
    assert units["stop/top/prep"]["state"] == "succeeded"
    assert units["stop/top/work/longA"]["state"] == "cancelled"
    assert units["stop/top/work/longB"]["state"] == "cancelled"
    assert "stop/top/final" not in units

    hold.unlink()
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr

    document = report(workdir)
    assert document["state"] == "succeeded"
    units = units_by_id(document)
    assert units["stop/top/prep"].get("resumed") is True
    for uid in ("work/longA", "work/longB", "pod/longC", "pod/quickD", "pod/sum", "final"):
        unit = units[f"stop/top/{uid}"]
        assert unit["state"] == "succeeded"
        assert "resumed" not in unit
    runs = env.runs()
    assert runs.count("stop/top/prep") == 1
    assert runs.count("stop/top/final") == 1
    assert (workdir / "store/stop/top/final/@outputs/quick.txt").read_text() == "stop/top/final"


def test_under_nohup_a_hangup_changes_nothing(env: Env) -> None:
    env.script("long.py", LONG)
    flow = env.flow("hup", step("long", "long.py"))
    hold = env.root / "hold"
    hold.touch()
    process = env.start("run", str(flow), "--workdir", str(env.root / "wd"), nohup=True)
    wait_for(lambda: len(env.recorded_pids()) == 1, 15, "the step to run")
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert process.poll() is None, (env.root / "meta.err").read_text()
    hold.unlink()
    pids = env.all_pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=15) == 1
    assert report(env.root / "wd")["state"] == "failed"


def test_a_second_signal_does_not_cut_short_the_first_ones_tear_down(env: Env) -> None:
    # `timeout` sends SIGTERM to meta and then to its process group. The steps here take their
    # SIGTERM as nothing: meta's tear-down waits its 2 s for them, and the second signal comes
    # while it does.
    env.script("stubborn.py", STUBBORN)
    flow = env.flow(
        "twice",
        {
            "name": "work",
            "scope": "macro",
            "pattern": "dag",
            "units": [step("longA", "stubborn.py"), step("longB", "stubborn.py")],
        },
    )
    workdir = env.root / "wd"
    (env.root / "hold").touch()
    process = env.start("run", str(flow), "--workdir", str(workdir))
    wait_for(lambda: len(env.recorded_pids()) == 2, 15, "longA and longB to run")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 128 + signal.SIGTERM, (env.root / "meta.err").read_text()
    assert wait_gone(env.all_pids()) == []
    document = report(workdir)
    assert document["state"] == "cancelled"
    units = units_by_id(document)
    assert units["twice/work/longA"]["state"] == "cancelled", units
    assert units["twice/work/longB"]["state"] == "cancelled", units


def test_interrupt_inside_a_micro_section(env: Env) -> None:
    env.script("long.py", LONG)
    env.script("quick.py", QUICK)
    env.script("gather.py", GATHER)
    flow = env.flow(
        "pod",
        {
            "name": "pod",
            "scope": "micro",
            "pattern": "fanin",
            "units": [step("longA", "long.py"), step("longB", "long.py"), step("q", "quick.py")],
            "gather": step("sum", "gather.py"),
        },
    )
    workdir = env.root / "wd"
    (env.root / "hold").touch()
    process = env.start("run", str(flow), "--workdir", str(workdir))
    wait_for(lambda: len(env.recorded_pids()) == 2, 15, "longA and longB to run")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 130
    assert wait_gone(env.all_pids()) == []
    assert report(workdir)["state"] == "cancelled"

    (env.root / "hold").unlink()
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr
    units = units_by_id(report(workdir))
    assert units["pod/pod/sum"]["state"] == "succeeded"
    # The gather sees every unit's outputs, those finished before the interrupt included.
    listing = json.loads((workdir / "store/pod/pod/sum/@outputs/listing.json").read_text())
    assert listing == {"longA": ["long.txt"], "longB": ["long.txt"], "q": ["quick.txt"]}
    assert env.runs().count("pod/pod/sum") == 1


def test_interrupt_while_waiting_to_retry_cancels_the_unit(env: Env) -> None:
    env.script("fail.py", FAIL_WHILE_HELD)
    flow = env.flow(
        "bo",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("bo", "fail.py", retries=3)],
        },
        defaults={"retryBackoffSeconds": 30},
    )
    workdir = env.root / "wd"
    (env.root / "hold").touch()
    process = env.start("run", str(flow), "--workdir", str(workdir))
    journal = workdir / "journal.jsonl"
    wait_for(lambda: journal.exists() and '"retrying":true' in journal.read_text(), 15, "a retry")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 130
    summary = (env.root / "meta.out").read_text()
    assert "bo: cancelled (1 units run, 1 cancelled)" in summary, summary
    unit = units_by_id(report(workdir))["bo/top/bo"]
    assert unit["state"] == "cancelled", unit
    assert [(a["attempt"], a["state"]) for a in unit["history"]] == [(1, "cancelled")]
    status = json.loads(env.meta("status", str(workdir), "-o", "json").stdout)
    assert status["units"]["cancelled"] == 1 and status["units"]["failed"] == 0
    (env.root / "hold").unlink()
    done = env.meta("resume", str(workdir))
    assert done.returncode == 0, done.stderr
    assert env.runs().count("bo/top/bo") == 2, "resume ran it again"

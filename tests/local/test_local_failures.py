"""Timeouts, retries and failures: whole process groups go, nothing new starts after a failure."""

from __future__ import annotations

import pytest

from tests.local.runs import Env, journal, report, step, units_by_id, wait_gone

pytestmark = pytest.mark.e2e

HANG = "import steplib\nsteplib.log_run()\nsteplib.spawn_grandchild_and_sleep()\n"

# Attempt 1 hangs with a grandchild; attempt 2 says whether attempt 1's processes still run.
HANG_THEN_CHECK = r"""
import os
from pathlib import Path
import steplib

steplib.log_run()
if os.environ["META_ATTEMPT"] == "1":
    steplib.spawn_grandchild_and_sleep()
states = []
for file in sorted(steplib.pids_dir().iterdir()):
    for pid in file.read_text().split():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            states.append("gone")
            continue
        states.append("gone" if stat.rsplit(")", 1)[1].split()[0] in "ZX" else "alive")
Path(os.environ["META_OUTPUT"], "states.txt").write_text(" ".join(states))
"""

TICK = r"""
import os, sys, time
from pathlib import Path
import steplib

steplib.log_run()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
Path(os.environ["META_OUTPUT"], "tick.txt").write_text(steplib.UNIT)
"""

FLAKY = r"""
import os, sys
from pathlib import Path
import steplib

steplib.log_run()
if os.environ["META_ATTEMPT"] == "1" or sys.argv[1:] == ["always"]:
    sys.stderr.write(f"flaky: attempt {os.environ['META_ATTEMPT']} fails\n")
    sys.exit(3)
Path(os.environ["META_OUTPUT"], "ok.txt").write_text("ok")
"""

# Fails once the sleeper runs, with more stderr than the report keeps: its tail ends in a marker.
BAD = r"""
import os, sys, time
from pathlib import Path
import steplib

steplib.log_run()
pids = steplib.pids_dir()
deadline = time.monotonic() + 10
while not (pids.is_dir() and any("sleeper" in p.name for p in pids.iterdir())):
    if time.monotonic() > deadline:
        sys.exit(9)
    time.sleep(0.01)
time.sleep(0.2)
sys.stderr.write("head-marker\n" + "filler line\n" * 400 + "boom-xyz: it broke\n")
sys.exit(1)
"""


def test_timeout_kills_the_whole_process_group(env: Env) -> None:
    env.script("hang.py", HANG)
    env.script("tick.py", TICK)
    flow = env.flow(
        "slow",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("hang", "hang.py", timeoutSeconds=1), step("after", "tick.py")],
        },
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir), timeout=30)
    assert done.returncode == 1, done.stderr
    pids = env.all_pids()
    assert len(pids) == 2, env.recorded_pids()
    assert wait_gone(pids) == []
    document = report(workdir)
    assert document["state"] == "failed"
    assert document["error"]["unit"] == "slow/top/hang"
    assert "timed out" in document["error"]["reason"]
    hang = units_by_id(document)["slow/top/hang"]
    assert hang["state"] == "failed"
    assert hang["reason"].startswith("timed out")
    assert hang["outputs"] is None
    assert "slow/top/hang" in done.stderr
    assert env.runs() == ["slow/top/hang"]


def test_a_timed_out_attempt_is_gone_before_the_retry_starts(env: Env) -> None:
    env.script("check.py", HANG_THEN_CHECK)
    flow = env.flow(
        "again",
        step("hang", "check.py", timeoutSeconds=1, retries=1),
        defaults={"retryBackoffSeconds": 0.01},
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir), timeout=30)
    assert done.returncode == 0, done.stderr
    unit = units_by_id(report(workdir))["again/hang"]
    assert (unit["state"], unit["attempts"]) == ("succeeded", 2)
    states = (workdir / "store/again/hang/@outputs/states.txt").read_text()
    assert states == "gone gone"


def test_retry_passes_on_the_second_attempt(env: Env) -> None:
    env.script("flaky.py", FLAKY)
    flow = env.flow(
        "retry",
        step("flaky", "flaky.py", retries=1),
        defaults={"retryBackoffSeconds": 0.01},
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr
    unit = units_by_id(report(workdir))["retry/flaky"]
    assert (unit["state"], unit["attempts"], unit["exitCode"]) == ("succeeded", 2, 0)
    assert env.runs() == ["retry/flaky", "retry/flaky"]
    logs = workdir / "logs" / "retry/flaky"
    assert "attempt 1 fails" in (logs / "1.err").read_text()
    assert not (logs / "2.err").exists(), "an empty log is not kept"
    assert (workdir / "store/retry/flaky/@outputs/ok.txt").read_text() == "ok"


def test_retries_run_out(env: Env) -> None:
    env.script("flaky.py", FLAKY)
    flow = env.flow(
        "retry",
        step("flaky", "flaky.py", "always", retries=2),
        defaults={"retryBackoffSeconds": 0.01},
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 1
    unit = units_by_id(report(workdir))["retry/flaky"]
    assert (unit["state"], unit["attempts"], unit["exitCode"]) == ("failed", 3, 3)
    assert unit["reason"] == "exited with code 3"
    assert "attempt 3 fails" in unit["stderrTail"]
    assert env.runs() == ["retry/flaky"] * 3


def test_failure_stops_the_flow_and_cancels_running_siblings(env: Env) -> None:
    env.script("hang.py", HANG)
    env.script("tick.py", TICK)
    env.script("bad.py", BAD)
    chain = [step(f"t{i}", "tick.py", "0.05") for i in range(40)]
    flow = env.flow(
        "fail",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                {
                    "name": "work",
                    "scope": "macro",
                    "pattern": "dag",
                    "units": [
                        step("sleeper", "hang.py"),
                        step("bad", "bad.py"),
                        {"name": "chain", "scope": "macro", "pattern": "sequence", "units": chain},
                    ],
                },
                step("after", "tick.py"),
            ],
        },
    )
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir), timeout=30)
    assert done.returncode == 1, done.stderr

    # The failed unit and the tail of its stderr, in the report and on the CLI's stderr.
    document = report(workdir)
    assert document["state"] == "failed"
    assert document["error"]["unit"] == "fail/top/work/bad"
    assert document["error"]["reason"] == "exited with code 1"
    units = units_by_id(document)
    bad = units["fail/top/work/bad"]
    assert (bad["state"], bad["exitCode"], bad["outputs"]) == ("failed", 1, None)
    assert bad["stderrTail"].endswith("boom-xyz: it broke")
    assert "head-marker" not in bad["stderrTail"]
    assert document["error"]["stderrTail"] == bad["stderrTail"]
    assert "boom-xyz: it broke" in done.stderr
    assert "fail/top/work/bad" in done.stderr

    # The running sibling is cancelled, with its grandchild.
    assert units["fail/top/work/sleeper"]["state"] == "cancelled"
    sleeper_pids = env.all_pids()
    assert len(sleeper_pids) == 2
    assert wait_gone(sleeper_pids) == []

    # Nothing starts once the failure is known: the chain stops part way, `after` never runs.
    events = journal(workdir)
    failed_at = next(
        i
        for i, e in enumerate(events)
        if e["event"] == "finished" and e["id"] == "fail/top/work/bad"
    )
    assert [e for e in events[failed_at:] if e["event"] == "started"] == []
    ran = env.runs()
    assert "fail/top/after" not in ran
    ticks = [r for r in ran if "/chain/" in r]
    assert 1 <= len(ticks) < len(chain)
    assert ticks == [f"fail/top/work/chain/t{i}" for i in range(len(ticks))]
    assert "fail/top/after" not in units
    assert f"fail/top/work/chain/t{len(chain) - 1}" not in units

"""Issue 13, item 10: a process that leaves its step's group (setsid and a double fork) is
stopped when its step ends, not left to outlive the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local.runs import Env, alive, step, wait_gone

pytestmark = pytest.mark.e2e

DAEMON = r"""
import os, sys, time
from pathlib import Path

pid_file = Path(os.environ["T_PIDS"]) / "daemon"
pid_file.parent.mkdir(parents=True, exist_ok=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        if sys.argv[1] == "bare":
            os.environ.clear()
        pid_file.write_text(str(os.getpid()))
        time.sleep(1000)
    os._exit(0)
while not pid_file.exists():
    time.sleep(0.01)
"""

CHECK = r"""
import os, sys
from pathlib import Path
pid = Path(os.environ["T_PIDS"], "daemon").read_text()
try:
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
except FileNotFoundError:
    state = "gone"
sys.exit(0 if state in ("gone", "Z", "X") else 1)
"""


@pytest.mark.parametrize("environ", ["kept", "bare"])
def test_a_daemonised_descendant_is_stopped_when_its_step_ends(env: Env, environ: str) -> None:
    env.script("daemon.py", DAEMON)
    env.script("check.py", CHECK)
    flow = env.flow(
        "reap",
        {
            "name": "seq",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("d", "daemon.py", environ), step("c", "check.py")],
        },
    )
    result = env.meta("run", str(flow), "--workdir", "wd")
    assert result.returncode == 0, result.stderr
    pid = int(Path(env.pids, "daemon").read_text())
    assert wait_gone([pid], timeout=5) == []
    assert not alive(pid)
    assert os.path.exists(env.root / "wd" / "report.json")


def test_the_reaper_spares_what_meta_started_in_its_own_group() -> None:
    """`meta run --ui` starts `meta ui` in its own process group, which is also its caller's
    (a shell's job, the test runner): ending a step must stop neither of them."""
    probe = (
        "import os, subprocess, sys, time\n"
        "from meta.local.reaper import stop_orphans\n"
        "own = subprocess.Popen(['sleep', '30'])\n"
        "escaped = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "time.sleep(0.2)\n"
        "stopped = stop_orphans(None, ())\n"
        "print(stopped, own.poll(), escaped.poll())\n"
        "own.kill()\n"
    )
    out = _probed(probe)
    stopped, own, escaped = out
    assert (stopped, own) == ("1", "None"), out  # meta's own child still runs
    assert escaped != "None", out  # the one in a session of its own was stopped (and reaped)


def test_an_ended_child_no_step_waits_for_is_reaped_by_the_sweep_of_any_step() -> None:
    """A step the warm starter forked and left unreaped when it was killed is re-parented to
    meta, ended: a zombie has no environment to name its step, and is reaped all the same."""
    probe = (
        "import os, time\n"
        "from meta.local.reaper import stop_orphans\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    os._exit(3)\n"
        "time.sleep(0.5)\n"
        "stopped = stop_orphans('flow/top/a', ())\n"
        "try:\n"
        "    os.waitpid(pid, os.WNOHANG)\n"
        "    print(stopped, 'still there')\n"
        "except ChildProcessError:\n"
        "    print(stopped, 'reaped')\n"
    )
    out = _probed(probe)
    assert out == ["1", "reaped"], out


def _probed(probe: str) -> list[str]:
    """The words `python -c PROBE` prints, run in a session of its own, so that even a reaper
    gone wrong reaches nothing of this test's."""
    return subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        start_new_session=True,
    ).stdout.split()

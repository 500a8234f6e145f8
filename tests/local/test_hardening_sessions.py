"""Issue 13, items 9 and 11: one session per workdir, unique default workdirs, and a signal at
any moment of `meta run` ends it with 130 or 143, a cancelled report once the run had started,
and no scratch left."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from meta.local.driver import scratch_root
from tests.local.runs import Env, step, wait_for, wait_gone

pytestmark = pytest.mark.e2e

HOLD = r"""
import os, time
from pathlib import Path
import steplib

steplib.note_pids(os.getpid())
while Path(os.environ["T_LOG"]).with_name("hold").exists():
    time.sleep(0.05)
Path(os.environ["META_OUTPUT"], "done.txt").write_text("done")
"""


def test_a_second_session_of_a_workdir_is_refused_naming_the_holder(env: Env) -> None:
    env.script("hold.py", HOLD)
    flow = env.flow("held", step("h", "hold.py"))
    (env.root / "hold").touch()
    first = env.start("run", str(flow), "--workdir", "wd")
    wait_for(lambda: len(env.recorded_pids()) == 1, 15, "the step to start")
    second = env.meta("resume", "wd")
    assert second.returncode == 2
    assert second.stderr == (
        f"wd: /: another session (pid {first.pid}) is working in this workdir; "
        "wait for it to end or stop it\n"
    )
    assert wait_gone(env.all_pids(), timeout=0.5) != [], "the first session's step still runs"
    (env.root / "hold").unlink()
    assert first.wait(timeout=30) == 0
    assert env.meta("resume", "wd").returncode == 0


def test_runs_started_in_the_same_second_get_workdirs_of_their_own(env: Env) -> None:
    env.script("hold.py", HOLD)
    flow = env.flow("twice", step("h", "hold.py"))
    runs = [env.start("run", str(flow), tag=f"run{i}") for i in range(3)]
    assert [run.wait(timeout=60) for run in runs] == [0, 0, 0]
    made = sorted(p.name for p in (env.root / "runs").iterdir())
    assert len(made) == 3, made


QUICK = r"""
import os
from pathlib import Path
Path(os.environ["META_OUTPUT"], "v.txt").write_text(os.environ["META_UNIT_ID"])
"""


def test_signals_at_random_moments_end_with_130_or_143_and_resume_as_if_whole(env: Env) -> None:
    env.script("quick.py", QUICK)
    flow = env.flow(
        "sig",
        {
            "name": "fan",
            "scope": "macro",
            "pattern": "fanout",
            "maxActive": 4,
            "over": {"input": "items"},
            "visit": step("q", "quick.py"),
        },
        inputs={"items": {"value": list(range(12))}},
    )
    started = time.monotonic()
    assert env.meta("run", str(flow), "--workdir", "whole").returncode == 0
    whole = time.monotonic() - started
    rng = random.Random(13)
    outcomes: dict[int, int] = {}
    for trial in range(24):
        sig = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
        # The first milliseconds, the middle, and the very end of a run.
        delay = rng.choice([0.0, 0.002, 0.02, rng.uniform(0, whole), whole * rng.uniform(0.9, 1.1)])
        workdir = env.root / f"w{trial}"
        process = env.start("run", str(flow), "--workdir", str(workdir), tag=f"t{trial}")
        time.sleep(delay)
        process.send_signal(sig)
        code = process.wait(timeout=60)
        err = (env.root / f"t{trial}.err").read_text()
        # Before the interpreter runs a line of `meta` (while Python itself starts) the
        # signal's default action applies, as for any program: nothing was written then.
        early = not workdir.exists() and "/meta/" not in err
        killed = sig == signal.SIGKILL
        if not early and not killed:
            assert "Traceback" not in err and "Aborted" not in err, err
            assert code in (0, 128 + sig), (code, err)
        outcomes[code] = outcomes.get(code, 0) + 1
        if (workdir / "run.json").exists() and code == 128 + sig and not killed:
            report = json.loads((workdir / "report.json").read_text())
            assert report["state"] == "cancelled"
        if not killed:
            assert not scratch_root(workdir).exists()
        if (workdir / "run.json").exists():
            on_record = _on_record(workdir)
            resumed = env.meta("resume", str(workdir))
            assert resumed.returncode == 0, resumed.stderr
            assert not on_record & _started_in_last_session(workdir)
            assert _store(workdir) == _store(env.root / "whole")
            assert not scratch_root(workdir).exists()
    assert set(outcomes) - {0}, outcomes
    assert os.listdir(env.root / "whole" / "store")


def _journal(workdir: Path) -> list[dict[str, object]]:
    lines = (workdir / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _on_record(workdir: Path) -> set[object]:
    if not (workdir / "journal.jsonl").exists():
        return set()
    entries = _journal(workdir)
    return {e["id"] for e in entries if e["event"] == "finished" and e["state"] == "succeeded"}


def _started_in_last_session(workdir: Path) -> set[object]:
    entries = _journal(workdir)
    last = max(i for i, e in enumerate(entries) if e["event"] == "session")
    return {e["id"] for e in entries[last:] if e["event"] == "started"}


def _store(workdir: Path) -> dict[str, bytes]:
    """Every file under the store (links of combined outputs followed), by relative path."""
    store = workdir / "store"
    return {
        str(path.relative_to(store)): path.read_bytes()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


def test_a_workdir_deleted_while_the_run_goes_on_fails_the_run(env: Env) -> None:
    """What the run did is lost with its journal: it must not say it succeeded."""
    workdir = env.root / "wd"
    gone = {"name": "gone", "run": {"command": ["rm", "-rf", str(workdir)]}}
    flow = env.flow("lost", {"name": "s", "scope": "macro", "pattern": "sequence", "units": [
        gone, step("after", "hold.py")
    ]})  # fmt: skip
    env.script("hold.py", HOLD)
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "was deleted while the run went on" in done.stderr, done.stderr


def test_a_run_whose_workdir_was_deleted_stops_and_makes_no_workdir_again(env: Env) -> None:
    workdir = env.root / "wd"
    gone = {"name": "gone", "run": {"command": ["rm", "-rf", str(workdir)]}}
    marks = env.root / "marks"
    marks.mkdir()
    mark = [
        "sh",
        "-c",
        f'touch "{marks}/$MARK"; echo x > "$META_OUTPUT/x"; sleep 0.05',
    ]
    after = [
        {"name": f"s{n}", "run": {"command": mark, "env": {"MARK": f"s{n}"}}} for n in range(40)
    ]
    flow = env.flow("lost", {"name": "s", "scope": "macro", "pattern": "sequence", "units": [
        gone, *after
    ]})  # fmt: skip
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "was deleted while the run went on" in done.stderr, done.stderr
    assert len(list(marks.iterdir())) < 10, "the run stopped soon after"
    assert not workdir.exists(), "nothing of it was made again"
    assert "report:" not in done.stdout

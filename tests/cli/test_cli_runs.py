"""meta runs, status, logs and clean on real local runs: what a person and a script see of runs
that succeeded, failed, were resumed, are running now, or were killed with `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from meta.cli import main
from meta.local.driver import scratch_root
from tests.local.runs import META, Env, a_run, alive, lock, step, wait_for, wait_gone

pytestmark = pytest.mark.e2e

# Writes to both streams; fails its first attempt when told to.
TALK = r"""
import os, sys
import steplib

attempt = os.environ["META_ATTEMPT"]
print(f"out of {steplib.UNIT} attempt {attempt}")
print(f"err of {steplib.UNIT} attempt {attempt}", file=sys.stderr)
if "fail-first" in sys.argv and attempt == "1":
    sys.exit(3)
if "fail" in sys.argv:
    sys.exit(4)
"""

# Says "before", then waits for the file `release` beside the flow, then says "after".
HOLD = r"""
import os, sys, time
from pathlib import Path
import steplib

steplib.note_pids(os.getpid())
print("before", flush=True)
while not Path("release").exists():
    time.sleep(0.02)
print("after", flush=True)
print("done", file=sys.stderr)
"""


def meta_json(env: Env, *args: str) -> Any:
    done = env.meta(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line_fault(done: Any) -> str:
    """The one line a user error prints, with no traceback, and exit code 2."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return str(lines[0])


def seq(*units: dict[str, Any]) -> dict[str, Any]:
    return {"name": "top", "scope": "macro", "pattern": "sequence", "units": list(units)}


def test_runs_lists_past_runs_with_their_counts(env: Env) -> None:
    env.script("talk.py", TALK)
    good = env.flow("good", seq(step("a", "talk.py"), step("b", "talk.py")))
    bad = env.flow("bad", seq(step("a", "talk.py"), step("b", "talk.py", "fail")))
    assert env.meta("run", str(good)).returncode == 0
    assert env.meta("run", str(bad)).returncode == 1

    listed = env.meta("runs")
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split() == [
        "WORKDIR", "FLOW", "STATE", "STARTED", "DURATION",
        "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "CACHED", "RUNNING",
    ]  # fmt: skip
    rows = [line.split() for line in lines]
    assert [(row[1], row[2], row[-6:]) for row in rows] == [
        ("good", "succeeded", ["2", "0", "0", "0", "0", "0"]),
        ("bad", "failed", ["1", "1", "0", "0", "0", "0"]),
    ]
    assert all(row[0].startswith("runs/") for row in rows)

    views = meta_json(env, "runs", "runs")
    assert [(v["flow"], v["state"], v["units"]["succeeded"]) for v in views] == [
        ("good", "succeeded", 2),
        ("bad", "failed", 1),
    ]
    failed = views[1]
    assert failed["failedUnit"] == "bad/top/b" and "exited with code 4" in failed["reason"]
    assert failed["durationSeconds"] >= 0 and failed["startedAt"].endswith("Z")

    status = env.meta("status", failed["run"])
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"{failed['run']}: failed"
    units = "  units: 1 succeeded, 1 failed, 0 skipped, 0 cancelled, 0 cached, 0 running"
    assert units in status.stdout
    assert "  failed unit: bad/top/b" in status.stdout
    assert meta_json(env, "status", failed["run"]) == failed


def test_a_resumed_run_counts_what_it_did_not_run_again_as_cached(env: Env) -> None:
    env.script("talk.py", TALK)
    env.script("gate.py", "from pathlib import Path\nassert Path('fixed').exists()\n")
    flow = env.flow("fix", seq(step("a", "talk.py"), step("b", "talk.py"), step("c", "gate.py")))
    assert env.meta("run", str(flow), "--workdir", "w").returncode == 1
    (env.root / "fixed").write_text("")
    assert env.meta("resume", "w").returncode == 0
    view = meta_json(env, "status", "w")
    assert view["state"] == "succeeded"
    assert view["units"] == {
        "succeeded": 1, "failed": 0, "cancelled": 0, "cached": 2, "running": 0, "skipped": 0
    }  # fmt: skip
    # c failed at first, with a traceback on stderr; the resumed session numbered on: its
    # attempt 2 wrote nothing, and attempt 1's log is kept, not shown as if it were this one's.
    shown = env.meta("logs", "w", "c")
    assert (shown.returncode, shown.stdout) == (0, "")
    assert shown.stderr == "(fix/top/c attempt 2 wrote no output)\n"
    earlier = env.meta("logs", "w", "c", "--attempt", "1")
    assert earlier.returncode == 0
    assert "AssertionError" in earlier.stderr


def test_logs_by_id_or_name_and_attempt(env: Env) -> None:
    env.script("talk.py", TALK)
    fanout = {
        "name": "each",
        "scope": "macro",
        "pattern": "fanout",
        "over": {"input": "items"},
        "visit": step("say", "talk.py"),
    }
    flow = env.flow(
        "talky",
        seq(step("flaky", "talk.py", "fail-first", retries=1), fanout),
        inputs={"items": {"value": [1, 2]}},
        defaults={"retryBackoffSeconds": 0.01},
    )
    done = env.meta("run", str(flow), "--workdir", "w")
    assert done.returncode == 0, done.stderr

    last = env.meta("logs", "w", "flaky")
    assert (last.returncode, last.stdout, last.stderr) == (
        0,
        "out of talky/top/flaky attempt 2\n",
        "err of talky/top/flaky attempt 2\n",
    )
    first = env.meta("logs", "w", "talky/top/flaky", "--attempt", "1")
    assert first.stdout == "out of talky/top/flaky attempt 1\n"
    as_json = meta_json(env, "logs", "w", "flaky", "--attempt", "1")
    assert as_json == {
        "run": "w",
        "unit": "talky/top/flaky",
        "attempt": 1,
        "stdout": "out of talky/top/flaky attempt 1\n",
        "stderr": "err of talky/top/flaky attempt 1\n",
    }

    line = one_line_fault(env.meta("logs", "w", "flaky", "--attempt", "3"))
    assert line == "w: /: unit talky/top/flaky has no attempt 3; its attempts: 1, 2"
    line = one_line_fault(env.meta("logs", "w", "say"))
    assert line.startswith("w: /: 'say' names 2 units; give one of: talky/top/each/")
    line = one_line_fault(env.meta("logs", "w", "nobody"))
    assert line.startswith("w: /: no unit 'nobody'; its units: talky/top/flaky, ")
    # With no unit named, a run that did not fail has no obvious one to show.
    assert one_line_fault(env.meta("logs", "w")).startswith("w: /: name a unit; its units: ")
    # A workdir given with --workdir outside runs/ is not where `meta runs` looks by default.
    assert one_line_fault(env.meta("runs")) == "runs: /: no such folder"


def test_the_failed_unit_is_the_default_for_logs(env: Env) -> None:
    env.script("talk.py", TALK)
    flow = env.flow("sad", seq(step("ok", "talk.py"), step("boom", "talk.py", "fail")))
    assert env.meta("run", str(flow), "--workdir", "w").returncode == 1
    shown = env.meta("logs", "w")
    assert (shown.stdout, shown.stderr) == (
        "out of sad/top/boom attempt 1\n",
        "err of sad/top/boom attempt 1\n",
    )


def test_what_a_step_wrote_reaches_the_terminal_escaped_in_summaries(env: Env) -> None:
    """A step's stderr tail is quoted by `meta run`'s failure summary and by `meta status`:
    there, control characters must not reach the terminal (a title, a reset, a backspace that
    overwrites what meta says). `meta logs` gives the bytes as they are."""
    env.script(
        "spoof.py",
        "import sys\n"
        "sys.stderr.write('\\x1b]0;PWNED\\x07\\x1bc fine\\x08\\x08\\x08\\x08\\xc2\\x9b31m\\n')\n"
        "sys.exit(3)\n",
    )
    flow = env.flow("esc", seq(step("bad", "spoof.py")))
    run = env.meta("run", str(flow), "--workdir", "w")
    status = env.meta("status", "w", "--unit", "bad")
    for shown in (run.stderr, status.stdout):
        assert "\\x1b]0;PWNED\\x07\\x1bc fine\\x08" in shown, shown
        assert not any(char in shown for char in "\x1b\x07\x08\x9b"), shown
    assert "\x1b]0;PWNED\x07" in env.meta("logs", "w", "bad").stderr


def test_a_running_run_its_live_log_and_follow(env: Env) -> None:
    env.script("hold.py", HOLD)
    flow = env.flow("slow", seq(step("wait", "hold.py")))
    run = env.start("run", str(flow), "--workdir", "runs/slow")
    wait_for(lambda: bool(env.recorded_pids()), 20, "the step to start")

    view = meta_json(env, "status", "runs/slow")
    assert view["state"] == "running" and view["units"]["running"] == 1
    assert view["finishedAt"] is None
    assert [v["state"] for v in meta_json(env, "runs")] == ["running"]
    # What the step wrote so far, read from its scratch while it runs.
    wait_for(lambda: env.meta("logs", "runs/slow", "wait").stdout == "before\n", 10, "before")

    follow = env.start("logs", "runs/slow", "wait", "--follow", tag="follow")
    stopped = env.start("logs", "runs/slow", "wait", "--follow", tag="stopped")
    time.sleep(0.3)
    assert follow.poll() is None, "it follows while the step runs"
    wait_for(lambda: (env.root / "stopped.out").read_text() == "before\n", 10, "the follower")
    stopped.send_signal(signal.SIGINT)
    assert stopped.wait(timeout=10) == 130, "Ctrl-C stops following"
    assert (env.root / "stopped.err").read_text() == "", "with no traceback"
    cleaned = meta_json(env, "clean", "--older-than", "0s")
    assert cleaned["runs"] == [], "a running run is never removed"
    assert str(scratch_root(env.root / "runs/slow")) not in cleaned["scratch"]

    (env.root / "release").write_text("")
    assert follow.wait(timeout=20) == 0
    assert (env.root / "follow.out").read_text() == "before\nafter\n"
    assert (env.root / "follow.err").read_text() == "done\n"
    assert run.wait(timeout=20) == 0
    assert meta_json(env, "status", "runs/slow")["state"] == "succeeded"


# Waits for the file `release` beside the flow, saying nothing, then writes its unit as its
# result; fails its first attempt when told to.
QUIET = r"""
import json, os, sys, time
from pathlib import Path
import steplib

steplib.note_pids(os.getpid())
if "fail-first" in sys.argv and os.environ["META_ATTEMPT"] == "1":
    sys.exit(3)
while not Path("release").exists():
    time.sleep(0.02)
Path(os.environ["META_RESULT"]).write_text(json.dumps({"unit": steplib.UNIT}))
"""


def test_attempts_an_interrupt_cancelled_are_shown_once_and_their_logs_say_nothing_was_written(
    env: Env,
) -> None:
    env.script("quiet.py", QUIET)
    units = [
        step("a", "quiet.py"),
        step("b", "quiet.py"),
        step("flaky", "quiet.py", "fail-first", retries=1),
    ]
    root = {"name": "top", "scope": "macro", "pattern": "dag", "units": units}
    flow = env.flow("calm", root, defaults={"retryBackoffSeconds": 60})
    run = env.start("run", str(flow), "--workdir", "w")
    # a and b wait, flaky failed its first attempt and waits to be retried.
    wait_for(lambda: len(env.recorded_pids()) == 3, 20, "three attempts to start")
    wait_for(
        lambda: "exited with code 3" in env.meta("status", "w", "--unit", "flaky").stdout,
        20,
        "the first attempt of flaky to fail",
    )
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=20) == 130
    (env.root / "release").write_text("")
    assert env.meta("resume", "w").returncode == 0

    shown = env.meta("logs", "w", "a", "--attempt", "1")
    assert (shown.returncode, shown.stdout) == (0, "")
    assert shown.stderr == "(calm/top/a attempt 1 wrote no output)\n"
    status = env.meta("status", "w", "--unit", "a").stdout
    assert 'result of calm/top/a: {"unit":"calm/top/a"}' in status
    assert "result of calm/top/b" not in status, "only the unit asked for shows its result"
    assert "attempts of calm/top/b (2):" in status
    # Cancelled while it waited for its retry: one attempt, on record twice.
    assert "attempts of calm/top/flaky (2):" in status
    flaky = status.split("attempts of calm/top/flaky (2):\n")[1].splitlines()
    assert flaky[0].startswith("    1. cancelled, exit code 3, ")
    assert flaky[1].startswith("    2. succeeded, exit code 0, ")


def test_a_killed_session_is_interrupted_and_clean_removes_its_leftovers(env: Env) -> None:
    env.script("hold.py", HOLD)
    flow = env.flow("doomed", seq(step("wait", "hold.py")))
    run = env.start("run", str(flow), "--workdir", "runs/doomed")
    wait_for(lambda: bool(env.recorded_pids()), 20, "the step to start")
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    scratch = scratch_root(env.root / "runs/doomed")
    assert scratch.is_dir(), "a kill -9 leaves the session's scratch"

    view = meta_json(env, "status", "runs/doomed")
    assert view["state"] == "interrupted"
    assert view["units"]["cancelled"] == 1 and view["units"]["running"] == 0
    assert f"pid {run.pid}" in view["reason"] and "meta resume" in view["reason"]
    status = env.meta("status", "runs/doomed")
    assert status.stdout.splitlines()[0] == "runs/doomed: interrupted"

    planned = env.meta("clean", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert f"would remove {scratch} (scratch of a dead session)" in planned.stdout
    assert "would remove runs/doomed" not in planned.stdout, "it is not 7 days old"
    assert scratch.is_dir(), "a dry run removes nothing"

    step_pids = env.all_pids()
    assert step_pids and all(alive(pid) for pid in step_pids), "its step outlived it"
    cleaned = meta_json(env, "clean", "--older-than", "0s")
    assert cleaned == {
        "dryRun": False,
        "runs": ["runs/doomed"],
        "kept": [],
        "inUse": [],
        "scratch": [str(scratch)],
    }
    assert not scratch.exists() and not (env.root / "runs/doomed").exists()
    assert wait_gone(step_pids) == [], "the step the dead session left is stopped"


def test_clean_from_inside_a_run_folder_says_it_stays_as_the_current_folder(env: Env) -> None:
    """A folder that held nothing but the run stays when `meta clean .` runs inside it: the
    message says why, not that it holds the user's files."""
    project = env.root / "only-run"
    project.mkdir()
    flow = env.flow("p", step("a", "-c", "print('hi')"))
    inside = {**env.environ(), "PWD": str(project)}
    # Named `.` or by its path, it stays, as the dry run says.
    for named, shown in ((".", "."), (str(project), str(project))):
        ran = subprocess.run(
            [*META, "run", str(flow), "--workdir", "."],
            cwd=project,
            env=inside,
            capture_output=True,
        )
        assert ran.returncode == 0, ran.stderr
        for dry in (["--dry-run"], []):
            cleaned = subprocess.run(
                [*META, "clean", named, "--older-than", "0s", *dry],
                cwd=project,
                env=inside,
                capture_output=True,
                text=True,
            )
            assert cleaned.returncode == 0, cleaned.stderr
            verb = "would remove" if dry else "removed"
            assert cleaned.stdout.splitlines() == [
                f"{verb} the run in {shown} (p, succeeded); the folder stays: it is the current "
                "folder"
            ]
        assert project.is_dir() and list(project.iterdir()) == []


def test_logs_of_a_unit_whose_id_is_too_long_for_a_path_say_there_are_none(env: Env) -> None:
    """Ids past PATH_MAX (45 sections nested, each named with 100 characters): the step cannot
    keep its logs, and `meta logs` said so with a traceback."""
    unit: dict[str, Any] = step("leaf", "-c", "print('hi')")
    for level in range(45):
        unit = {
            "name": f"{level:02d}" + "n" * 98,
            "scope": "macro",
            "pattern": "sequence",
            "units": [unit],
        }
    ran = env.meta("run", str(env.flow("deep", unit)), "--workdir", "w")
    assert ran.returncode == 1, ran.stderr
    assert "File name too long" in ran.stderr
    logs = env.meta("logs", "w")
    assert logs.returncode == 0, logs.stderr
    assert "attempt 1 wrote no output)" in logs.stderr


def test_clean_leaves_whole_a_run_whose_store_or_logs_hold_the_current_folder(env: Env) -> None:
    """Run from inside a run's `store` (or `logs`), `meta clean` would remove the folder the
    shell is in: it leaves that run whole and says so, in a dry run too; other runs go."""
    flow = env.flow("p", step("a", "-c", "print('hi')"))
    for name in ("held", "other"):
        ran = env.meta("run", str(flow), "--workdir", f"runs/{name}")
        assert ran.returncode == 0, ran.stderr
    for part in ("store", "logs/p"):
        inside = env.root / "runs/held" / part
        assert inside.is_dir()
        for dry in (["--dry-run"], []):
            cleaned = subprocess.run(
                [*META, "clean", str(env.root / "runs"), "--older-than", "0s", *dry],
                cwd=inside,
                env={**env.environ(), "PWD": str(inside)},
                capture_output=True,
                text=True,
            )
            assert cleaned.returncode == 0, cleaned.stderr
            last = cleaned.stdout.splitlines()[-1]
            assert last.startswith("left ") and "held whole" in last, last
            assert last.endswith("the current folder is inside it (cd out first)")
            assert (env.root / "runs/held/run.json").is_file() and inside.is_dir()
    assert not (env.root / "runs/other").exists()


def test_clean_removes_only_what_a_run_wrote_in_a_folder_it_was_given(env: Env) -> None:
    """`meta run --workdir .` in a project folder: `meta clean` takes the run and leaves the
    folder, the flow file and the user's files in it."""
    project = env.root / "proj"
    project.mkdir()
    write = "import os; open(os.environ['META_OUTPUT'] + '/o', 'w').write('x'); print('hi')"
    flow = env.flow("p", seq(step("a", "-c", write), step("b", "-c", "print('hi')")))
    flow = flow.rename(project / flow.name)
    (project / "precious.txt").write_text("precious\n")
    ran = subprocess.run(
        [*META, "run", flow.name, "--workdir", "."],
        cwd=project,
        env=env.environ(),
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert {"store", "logs", "run.json"} < {path.name for path in project.iterdir()}

    planned = env.meta("clean", ".", "--older-than", "0s", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        "would remove the run in proj (p, succeeded); "
        "the folder stays: it holds files the run did not write"
    ]
    assert (project / "run.json").exists(), "a dry run removes nothing"
    cleaned = meta_json(env, "clean", ".", "--older-than", "0s")
    assert cleaned == {
        "dryRun": False,
        "runs": ["proj"],
        "kept": ["proj"],
        "inUse": [],
        "scratch": [],
    }
    assert sorted(path.name for path in project.iterdir()) == ["p.flow.yaml", "precious.txt"]
    assert (project / "precious.txt").read_text() == "precious\n"
    assert meta_json(env, "runs", ".") == [], "nothing of the run is left to find"

    # A folder that holds nothing but a run goes with it.
    assert env.meta("run", str(flow), "--workdir", "runs/mine").returncode == 0
    cleaned = meta_json(env, "clean", "--older-than", "0s")
    assert cleaned == {
        "dryRun": False,
        "runs": ["runs/mine"],
        "kept": [],
        "inUse": [],
        "scratch": [],
    }
    assert not (env.root / "runs/mine").exists() and (env.root / "runs").is_dir()


def test_faults_are_one_line_and_exit_2(env: Env, tmp_path: Path) -> None:
    no_cluster = {**os.environ, "HOME": str(tmp_path / "home")}
    no_cluster.pop("KUBECONFIG", None)
    for command in (["status", "my-flow"], ["logs", "my-flow"]):
        done = subprocess.run(
            [*META, *command], env=no_cluster, capture_output=True, text=True, cwd=tmp_path
        )
        line = one_line_fault(done)
        assert line.startswith("my-flow: /: no run folder here, and no cluster to look it up in")

    (env.root / "empty").mkdir()
    # A path (it has a '/') is a workdir, never a MetaFlow's name.
    assert one_line_fault(env.meta("status", "empty/")) == "empty: /: no run here (no run.json)"
    (env.root / "f.yaml").write_text("{}")
    for command in (["status", "./f.yaml"], ["logs", "./f.yaml"]):
        line = one_line_fault(env.meta(*command))
        assert line == "f.yaml: /: not a run's workdir (a file, not a folder)"
    (env.root / "broken").mkdir()
    (env.root / "broken/run.json").write_text("{")
    line = one_line_fault(env.meta("logs", "broken", "x"))
    assert line.startswith("broken/run.json: /: unreadable")
    assert one_line_fault(env.meta("runs", "nowhere")) == "nowhere: /: no such folder"
    listed = env.meta("runs", ".")
    assert listed.returncode == 0 and listed.stderr.startswith("skipped: broken/run.json: /:")
    bad_age = env.meta("clean", "--older-than", "soon")
    assert bad_age.returncode == 2 and "expected a number and a unit" in bad_age.stderr


def test_status_and_logs_of_a_skipped_unit_say_it_never_ran_and_why(env: Env) -> None:
    flow = env.flow(
        "sk",
        {
            "name": "main",
            "scope": "macro",
            "pattern": "dag",
            "onFailure": "continue",
            "units": [
                step("off1", "-c", "pass", when="false"),
                step("bad", "-c", "raise SystemExit(1)"),
                step("after", "-c", "pass", dependsOn=["bad"]),
            ],
        },
    )
    assert env.meta("run", str(flow), "--workdir", "w").returncode != 0
    for unit, why in (("off1", "its `when` was false"), ("after", "a unit it reads failed")):
        text = env.meta("status", "w", "--unit", unit)
        assert text.returncode == 0, text.stderr
        assert f"sk/main/{unit} was skipped ({why}): it never ran" in text.stdout, text.stdout
        assert "none ended yet" not in text.stdout
        shown = meta_json(env, "status", "w", "--unit", unit)["attempts"]
        assert [(u["id"], u["state"], u["history"]) for u in shown if u["id"].endswith(unit)] == [
            (f"sk/main/{unit}", "skipped", [])
        ]
        line = one_line_fault(env.meta("logs", "w", unit))
        assert (
            line == f"w: /: unit sk/main/{unit} was skipped ({why}): it never ran and has no logs"
        )
    reasons = {
        u["id"]: u["reason"] for u in meta_json(env, "status", "w", "--unit", "off1")["attempts"]
    }
    assert reasons["sk/main/off1"] == "condition"


def test_status_of_a_cached_unit_shows_its_result(env: Env) -> None:
    env.script("gen.py", "import os; open(os.environ['META_RESULT'], 'w').write('{\"n\": 3}')")
    flow = env.flow("res", seq(step("gen", "gen.py", cache=True)))
    cache = str(env.root / "cache")
    for workdir in ("d1", "d2"):
        done = env.meta("run", str(flow), "--workdir", workdir, "--cache-dir", cache)
        assert done.returncode == 0, done.stderr
    text = env.meta("status", "d2", "--unit", "gen").stdout
    assert "result of res/top/gen: " in text and "3" in text, text
    assert "was not run again: its outputs are those of" in text, text
    (shown,) = meta_json(env, "status", "d2", "--unit", "gen")["attempts"]
    assert (shown["state"], shown["result"]) == ("cached", {"n": 3})


def test_unreadable_folders_are_skipped_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process: `lock` makes the folder unreadable as another user's is, even to root.
    monkeypatch.chdir(tmp_path)
    a_run(tmp_path / "runs" / "a")
    a_run(tmp_path / "runs" / "private" / "b")
    lock(monkeypatch, tmp_path / "runs" / "private")
    for arguments in (["runs"], ["runs", "runs"], ["clean", "--dry-run"]):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 0, result.output
        assert result.stderr == "skipped: runs/private: /: unreadable: Permission denied\n"
    listed = CliRunner().invoke(main, ["runs", "-o", "json"])
    assert [run["run"] for run in json.loads(listed.stdout)] == ["runs/a"]
    refused = CliRunner().invoke(main, ["runs", "runs/private/b"])
    assert refused.exit_code == 2
    assert refused.stderr == "runs/private/b: /: unreadable: Permission denied\n"

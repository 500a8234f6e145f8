"""Faults around a run, not in the flow: outputs that cannot be kept, a damaged journal or run
record. Each ends in a clear line and an exit code, never a traceback."""

from __future__ import annotations

import json

from tests.local.runs import Env, report, step, units_by_id

DANGLING = "import os\nos.symlink('/nonexistent/target', os.environ['META_OUTPUT'] + '/x')\n"
TRUE = {"name": "ok", "run": {"command": ["true"]}}


def test_outputs_that_cannot_be_kept_fail_the_unit_not_the_runtime(env: Env) -> None:
    env.script("dangle.py", DANGLING)
    flow = env.flow("keep", step("dangle", "dangle.py"))
    result = env.meta("run", str(flow), "--workdir", "w")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    unit = units_by_id(report(env.root / "w"))["keep/dangle"]
    assert unit["state"] == "failed"
    assert "could not be kept" in unit["reason"]


def test_a_damaged_journal_is_named_on_resume(env: Env) -> None:
    flow = env.flow("damaged", TRUE)
    assert env.meta("run", str(flow), "--workdir", "w").returncode == 0
    with (env.root / "w" / "journal.jsonl").open("a") as handle:
        handle.write('{"event": "finished", "bogus": 1}\n')
    result = env.meta("resume", "w")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("w/journal.jsonl: /"), line
    assert "is not a record" in line


def test_a_run_record_missing_its_fields_is_named_on_resume(env: Env) -> None:
    (env.root / "w").mkdir()
    (env.root / "w" / "run.json").write_text(json.dumps({"flow": "x.flow.yaml"}))
    result = env.meta("resume", "w")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "w/run.json: /: not a run record (missing: ['startedAt', 'fingerprint'])"
    )


def test_a_timed_out_step_keeps_its_last_words(env: Env) -> None:
    env.script(
        "stuck.py",
        "import sys, time\nprint('stuck on item 7', file=sys.stderr)\n"
        "sys.stderr.flush()\ntime.sleep(60)\n",
    )
    flow = env.flow("late", step("stuck", "stuck.py", timeoutSeconds=0.5))
    result = env.meta("run", str(flow), "--workdir", "w")
    assert result.returncode == 1
    unit = units_by_id(report(env.root / "w"))["late/stuck"]
    assert unit["reason"] == "timed out after 0.5 s"
    assert "stuck on item 7" in unit["stderrTail"]
    assert "stuck on item 7" in result.stderr

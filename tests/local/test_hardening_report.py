"""Issue 13, item 1: a `--report` never replaces a device, a flow, an input or a workdir file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.local.runs import PY, Env


def _flow(env: Env) -> Path:
    (env.root / "data.json").write_text("[1, 2]")
    return env.flow(
        "rp",
        {"name": "s", "run": {"command": [PY, "-S", "-c", "pass"]}},
        inputs={"data": {"path": "data.json"}},
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/null", "would replace something that is not a regular file"),
        ("rp.flow.yaml", "would replace a flow or input file of this run"),
        ("data.json", "would replace a flow or input file of this run"),
        ("wd/journal.jsonl", "would replace a file of the workdir (only its report.json may be)"),
        ("link.json", "would replace something that is not a regular file"),
    ],
)
def test_a_report_that_would_destroy_something_is_refused(
    env: Env, target: str, reason: str
) -> None:
    flow = _flow(env)
    first = env.meta("run", flow.name, "--workdir", "wd")
    assert first.returncode == 0, first.stderr
    os.symlink("data.json", env.root / "link.json")
    before = {
        p: p.read_bytes() for p in (flow, env.root / "data.json", env.root / "wd/journal.jsonl")
    }
    again = env.meta("run", flow.name, "--workdir", "wd2", "--report", target)
    assert again.returncode == 2
    assert again.stderr.strip().endswith(f": /: the report {reason}")
    assert len(again.stderr.strip().splitlines()) == 1
    resumed = env.meta("resume", "wd", "--report", target)
    assert resumed.returncode == 2, resumed.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert Path("/dev/null").is_char_device()


def test_the_workdir_report_and_a_plain_file_may_be_replaced(env: Env) -> None:
    flow = _flow(env)
    (env.root / "old.json").write_text("old")
    (env.root / "old.json.partial").write_text("keep me")
    result = env.meta("run", flow.name, "--workdir", "wd", "--report", "old.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((env.root / "old.json").read_text())["state"] == "succeeded"
    assert (env.root / "old.json.partial").read_text() == "keep me"
    again = env.meta("resume", "wd", "--report", "wd/report.json")
    assert again.returncode == 0, again.stderr


def test_a_report_follows_the_umask(env: Env) -> None:
    flow = _flow(env)
    old = os.umask(0o027)
    try:
        result = env.meta("run", flow.name, "--workdir", "wd", "--report", "r.json")
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    for report in (env.root / "r.json", env.root / "wd" / "report.json"):
        assert stat.S_IMODE(report.stat().st_mode) == 0o640, report

"""Issue 13, items 2, 3, 12 and 16: what the store keeps is checked, never trusted or escaped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from meta.local.driver import scratch_root
from meta.local.runner import resume_run, start_run
from meta.trees import copy_tree, measure_tree, remove_tree
from tests.local.runs import PY, Env, journal, step

pytestmark = pytest.mark.e2e

WRITE = r"""
import os, sys
from pathlib import Path
import steplib

steplib.log_run()
Path(os.environ["META_OUTPUT"], "v.txt").write_text(sys.argv[1] + "\n")
"""


def _fan(env: Env) -> Path:
    env.script("write.py", WRITE)
    return env.flow(
        "fan",
        {
            "name": "fan",
            "scope": "macro",
            "pattern": "fanout",
            "over": {"input": "items"},
            "visit": step("w", "write.py", "{{ item }}"),
        },
        inputs={"items": {"value": [1, 2, 3, 4]}},
    )


def test_resume_runs_again_a_unit_whose_outputs_went_missing_or_changed(env: Env) -> None:
    flow = _fan(env)
    first = env.meta("run", flow.name, "--workdir", "wd")
    assert first.returncode == 0, first.stderr
    finished = [e for e in journal(env.root / "wd") if e["event"] == "finished"]
    assert all(e["outputs"]["files"] == 1 and e["outputs"]["bytes"] == 2 for e in finished)
    store = env.root / "wd" / "store" / "fan" / "fan"
    shutil.rmtree(store / "1" / "w" / "@outputs")
    (store / "2" / "w" / "@outputs" / "v.txt").write_text("9\n")
    ran = len(env.runs())
    again = env.meta("resume", "wd")
    assert again.returncode == 0, again.stderr
    assert (
        "note: unit fan/fan/1/w ran again: its outputs are missing from the store" in again.stderr
    )
    assert "note: unit fan/fan/2/w ran again: its outputs in the store changed" in again.stderr
    assert sorted(env.runs()[ran:]) == ["fan/fan/1/w", "fan/fan/2/w"]
    assert (store / "1" / "w" / "@outputs" / "v.txt").read_text() == "2\n"
    assert (store / "2" / "w" / "@outputs" / "v.txt").read_text() == "3\n"
    # Now as kept: a third session runs nothing.
    ran = len(env.runs())
    assert env.meta("resume", "wd").returncode == 0
    assert env.runs()[ran:] == []


def _one(tmp_path: Path, script: str) -> Path:
    flow = tmp_path / "one.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: one}\n"
        f"spec:\n  root: {{name: p, run: {{command: [{PY}, -S, -c, {script!r}]}}}}\n"
    )
    return flow


def test_meta_output_replaced_by_a_link_is_refused_and_nothing_is_copied(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("s3cret")
    script = (
        f"import os; o = os.environ['META_OUTPUT']; os.rmdir(o); os.symlink({str(secret)!r}, o)"
    )
    outcome = start_run(_one(tmp_path, script), tmp_path / "w", {})
    assert outcome.state == "failed"
    assert "META_OUTPUT itself was replaced by a link" in outcome.report["error"]["reason"]
    assert not (tmp_path / "w" / "store" / "one" / "p").exists()


def test_meta_output_replaced_by_a_file_is_refused(tmp_path: Path) -> None:
    script = "import os; o = os.environ['META_OUTPUT']; os.rmdir(o); open(o, 'w').write('x')"
    outcome = start_run(_one(tmp_path, script), tmp_path / "w", {})
    assert outcome.state == "failed"
    assert "replaced by a non-folder" in outcome.report["error"]["reason"]


def test_outputs_nested_1100_folders_deep_are_kept_and_cleaned_up(tmp_path: Path) -> None:
    deep = (
        "import os\n"
        "fd = os.open(os.environ['META_OUTPUT'], os.O_RDONLY)\n"
        "for _ in range(1100):\n"
        "    os.mkdir('d', dir_fd=fd); inner = os.open('d', os.O_RDONLY, dir_fd=fd)\n"
        "    os.close(fd); fd = inner\n"
        "os.close(os.open('end', os.O_WRONLY | os.O_CREAT, dir_fd=fd))"
    )
    workdir = tmp_path / "w"
    outcome = start_run(_one(tmp_path, deep), workdir, {})
    assert outcome.state == "succeeded", outcome.report.get("error")
    assert measure_tree(str(workdir / "store" / "one" / "p" / "@outputs")).files == 1
    assert resume_run(workdir).state == "succeeded"
    assert not scratch_root(workdir).exists()
    remove_tree(str(workdir / "store"))
    assert not (workdir / "store").exists()


def test_sparse_outputs_stay_sparse(tmp_path: Path) -> None:
    source = tmp_path / "out"
    source.mkdir()
    with (source / "big").open("wb") as handle:
        handle.truncate(1 << 30)
        handle.seek(1 << 29)
        handle.write(b"middle")
    (tmp_path / "link-in").symlink_to("big")
    os.symlink("big", source / "alias")
    kept = copy_tree(str(source), str(tmp_path / "kept"))
    copy = tmp_path / "kept" / "big"
    assert copy.stat().st_size == 1 << 30
    assert copy.stat().st_blocks * 512 < 1 << 20
    with copy.open("rb") as handle:
        handle.seek(1 << 29)
        assert handle.read(6) == b"middle"
    assert not (tmp_path / "kept" / "alias").is_symlink()
    assert kept == measure_tree(str(tmp_path / "kept"))
    assert kept.files == 2 and kept.bytes == 2 << 30


def test_a_huge_log_keeps_its_head_and_tail_and_says_what_was_cut(tmp_path: Path) -> None:
    script = (
        "import sys; sys.stderr.write('first\\n' + 'x' * (5 << 20) + '\\nlast\\n'); sys.exit(3)"
    )
    outcome = start_run(_one(tmp_path, script), tmp_path / "w", {})
    assert outcome.state == "failed"
    kept = (tmp_path / "w" / "logs" / "one" / "p" / "1.err").read_bytes()
    assert kept.startswith(b"first\n") and kept.endswith(b"\nlast\n")
    assert len(kept) < (2 << 20) + 100
    assert b"[... meta cut " in kept
    assert outcome.report["error"]["stderrTail"].endswith("last")

"""meta.local.runs' own rules: which session is alive, and which scratch `meta clean` may take."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from meta.errors import UserError
from meta.local.driver import OWNER_FILE, scratch_root
from meta.local.runs import clean_up, find_runs, parse_age, session_alive
from tests.local.runs import a_run, lock


def test_a_session_is_alive_while_its_process_is_the_one_that_recorded_it() -> None:
    assert session_alive(os.getpid(), time.time())
    # A record made long before this process started names another program that had its pid.
    assert not session_alive(os.getpid(), time.time() - 10**9)
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert not session_alive(ended.pid, time.time())


def owned(base: Path, name: str, pid: int, at: float) -> Path:
    folder = base / name
    folder.mkdir()
    (folder / OWNER_FILE).write_text(json.dumps({"pid": pid, "at": at, "workdir": "/w"}))
    return folder


def dead_scratch(tmp_path: Path) -> tuple[Path, Path, Path, subprocess.Popen[bytes]]:
    """A base of scratch folders, a folder of runs, and in the base the scratch of a session
    whose process has ended (that process)."""
    base, runs = tmp_path / "shm", tmp_path / "runs"
    base.mkdir()
    runs.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()
    return base, runs, owned(base, "meta-0123456789ab", ended.pid, time.time()), ended


def test_clean_takes_only_scratch_whose_session_is_dead(tmp_path: Path) -> None:
    base, runs, dead, ended = dead_scratch(tmp_path)
    live = owned(base, "meta-ba9876543210", os.getpid(), time.time())
    unowned = base / "meta-aaaaaaaaaaaa"
    unowned.mkdir()
    other = owned(base, "meta-not-ours", ended.pid, time.time())

    planned, faults = clean_up(runs, 0, dry_run=True, scratch_base=base)
    assert (planned.runs, planned.scratch, faults) == ([], [dead], [])
    assert dead.exists(), "a dry run removes nothing"
    done, _ = clean_up(runs, 0, dry_run=False, scratch_base=base)
    assert done.scratch == [dead] and not dead.exists()
    assert live.exists() and unowned.exists() and other.exists()


def test_clean_leaves_dead_scratch_that_holds_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, runs, dead, _ = dead_scratch(tmp_path)
    (dead / "units").mkdir()
    monkeypatch.chdir(dead / "units")
    for dry_run in (True, False):
        done, _ = clean_up(runs, 0, dry_run=dry_run, scratch_base=base)
        assert (done.scratch, done.in_use) == ([], [dead])
    assert (dead / "units").is_dir()


def test_scratch_of_an_earlier_meta_goes_with_its_ended_run(tmp_path: Path) -> None:
    """Scratch with no owner file (made before sessions wrote one) is known by its run."""
    base, runs = tmp_path / "shm", tmp_path / "runs"
    workdir = runs / "old"
    workdir.mkdir(parents=True)
    (workdir / "run.json").write_text(json.dumps({"flow": "/f.yaml", "startedAt": 1.0}))
    (workdir / "report.json").write_text(json.dumps({"flow": "f", "state": "failed", "units": []}))
    left = base / scratch_root(workdir).name
    left.mkdir(parents=True)
    young = base / "meta-aaaaaaaaaaaa"
    young.mkdir()
    os.utime(left, (1.0, 1.0))

    done, _ = clean_up(runs, 10**9, dry_run=False, scratch_base=base)
    assert (done.runs, done.scratch) == ([], [left])
    assert workdir.exists() and young.exists()


def test_ages() -> None:
    assert [parse_age(t) for t in ("45s", "30m", "12h", "7d", "2w")] == [
        45, 1800, 43200, 604800, 1209600
    ]  # fmt: skip


def test_an_unreadable_folder_is_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    kept = a_run(runs / "a")
    a_run(runs / "private" / "b")
    lock(monkeypatch, runs / "private")

    found, faults = find_runs(runs)
    assert [run.workdir for run in found] == [kept]
    assert [str(fault) for e in faults for fault in e.faults] == [
        f"{runs / 'private'}: /: unreadable: Permission denied"
    ]
    done, faults = clean_up(runs, 0, dry_run=True, scratch_base=tmp_path / "shm")
    assert done.runs == found
    assert len(faults) == 1


def test_an_unreadable_folder_asked_for_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    a_run(private / "b")
    lock(monkeypatch, private)
    found, faults = find_runs(private)
    assert found == []
    assert [str(fault) for e in faults for fault in e.faults] == [
        f"{private}: /: unreadable: Permission denied"
    ]
    with pytest.raises(UserError) as raised:
        find_runs(private / "b")
    assert str(raised.value) == f"{private / 'b'}: /: unreadable: Permission denied"


def _replaced(path: Path, kind: str) -> None:
    """Put something that is not a regular file where a run's own file is."""
    path.unlink(missing_ok=True)
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("name", ["journal.jsonl", "report.json", "run.json"])
def test_a_runs_file_that_is_not_a_regular_file_is_named_not_read(
    tmp_path: Path, name: str, kind: str
) -> None:
    workdir = a_run(tmp_path / "runs" / "a")
    _replaced(workdir / name, kind)
    # Neither a wait for a FIFO's writer nor an endless read of /dev/zero: one fault each.
    runs, faults = find_runs(tmp_path / "runs")
    assert runs == []
    assert [str(fault) for fault in faults] == [
        f"{workdir / name}: /: unreadable: is "
        + {
            "folder": "a folder, not a file",
            "fifo": "a FIFO (a named pipe), not a regular file",
            "device": "a device, not a regular file",
        }[kind]
    ]


def test_a_run_killed_before_its_journal_named_it_is_interrupted_not_running(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "runs" / "a"
    workdir.mkdir(parents=True)
    (workdir / "run.json").write_text(json.dumps({"flow": "/f.yaml", "startedAt": time.time()}))
    ended = subprocess.Popen(["true"])
    ended.wait()
    (workdir / "session.lock").write_text(f"{ended.pid}\n")
    (run,), _ = find_runs(tmp_path / "runs")
    assert run.state == "interrupted"
    (workdir / "session.lock").write_text(f"{os.getpid()}\n")
    (run,), _ = find_runs(tmp_path / "runs")
    assert run.state == "running"

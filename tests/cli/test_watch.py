"""`meta watch DIR [--run]`, as a real process: drop a schema, get a flow (and a run).

The watcher runs in the background with its stdout/stderr in files; the inputs are copies of
samples/schemas/. Every test stops it with SIGINT (as Ctrl-C does) and checks that it exits 0
and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from meta.cli.generate import _tell
from meta.cli.watch import Watcher, WatchEvent
from meta.hookspecs import Description
from meta.testing import PluginLoader
from tests.generate.fakes import FixedGenerator
from tests.local.runs import Env, wait_for

pytestmark = pytest.mark.e2e

SCHEMAS = Path(__file__).resolve().parents[2] / "samples" / "schemas"
WITHIN = 2.0
"""How soon after a drop the flow must be there (the issue's promise)."""


def start_watch(env: Env, folder: Path, *options: str) -> subprocess.Popen[bytes]:
    folder.mkdir(exist_ok=True)
    process = env.start("watch", str(folder), *options, tag="watch")
    wait_for(lambda: "watching" in stderr(env), 30, "the watcher to start")
    # The watcher says "watching" just before it subscribes to the folder's events; a drop
    # made in between is still handled (it lists the folder once subscribed), only later.
    time.sleep(0.3)
    return process


def stderr(env: Env) -> str:
    return (env.root / "watch.err").read_text(errors="replace")


def stdout(env: Env) -> str:
    return (env.root / "watch.out").read_text(errors="replace")


def drop(folder: Path, name: str, sample: str, *, data: bool = True) -> None:
    """Copy the sample's data file (if asked) and then its schema into `folder` as NAME.*"""
    if data:
        shutil.copy(SCHEMAS / f"{sample}.data.json", folder / f"{name}.data.json")
    shutil.copy(SCHEMAS / f"{sample}.schema.json", folder / f"{name}.schema.json")


def drop_text(folder: Path, name: str, text: str) -> None:
    """Write a schema the way an editor saves one: a temporary file renamed into place."""
    temporary = folder / f".{name}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, folder / f"{name}.schema.json")


def wait_for_file(path: Path, timeout: float = 10.0, *, unlike: str | None = None) -> float:
    """Seconds until `path` exists (and, given `unlike`, holds other text); fails at `timeout`."""
    started = time.monotonic()

    def ready() -> bool:
        if not path.is_file():
            return False
        return unlike is None or path.read_text() != unlike

    wait_for(ready, timeout, f"{path.name}")
    return time.monotonic() - started


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is inside `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and (cwd == directory or directory in cwd.parents):
            found.append(int(entry.name))
    return found


def stop(env: Env, process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C: SIGINT to the watcher's process group; it must exit 0 leaving nothing behind."""
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=15) == 0, stderr(env)
    assert "stopped" in stderr(env)
    assert "Traceback" not in stderr(env)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing is left in its process group
    assert processes_in(env.root) == []


def validate(env: Env, flow: Path) -> subprocess.CompletedProcess[str]:
    return env.meta("validate", str(flow))


def run_report(folder: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "runs" / name / "report.json").read_text())
    return document


def test_a_dropped_schema_becomes_a_valid_flow_within_two_seconds(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder)
    drop(folder, "company", "company")
    elapsed = wait_for_file(folder / "company.flow.yaml")
    assert elapsed < WITHIN, f"the flow took {elapsed:.2f} s"
    text = (folder / "company.flow.yaml").read_text()
    assert "meta-orchestrator.io/generator: tree" in text
    assert "path: company.data.json" in text
    checked = validate(env, folder / "company.flow.yaml")
    assert checked.returncode == 0, checked.stderr
    wait_for(lambda: "company: wrote" in stdout(env), 5, "the watcher to say so")
    assert "(generator tree)" in stdout(env)
    assert not (folder / "company.error.txt").exists()
    assert not (folder / "runs").exists(), "without --run nothing runs"
    stop(env, watcher)


def test_a_bad_schema_writes_an_error_file_and_the_watcher_goes_on(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder)
    bad = json.loads((SCHEMAS / "tasks.schema.json").read_text())
    bad["$defs"]["task"]["type"] = "objekt"
    drop_text(folder, "bad", json.dumps(bad))
    elapsed = wait_for_file(folder / "bad.error.txt")
    assert elapsed < WITHIN, f"the error took {elapsed:.2f} s"
    lines = (folder / "bad.error.txt").read_text().splitlines()
    assert lines == [
        "drop/bad.schema.json: /$defs/task/type: not a valid JSON Schema: "
        "'objekt' is not valid under any of the given schemas"
    ]
    assert not (folder / "bad.flow.yaml").exists()
    wait_for(lambda: "bad: refused, see drop/bad.error.txt" in stdout(env), 5, "the refusal")
    # The watcher goes on: a later good schema still works.
    drop(folder, "tasks", "tasks")
    elapsed = wait_for_file(folder / "tasks.flow.yaml")
    assert elapsed < WITHIN, f"the flow took {elapsed:.2f} s"
    assert validate(env, folder / "tasks.flow.yaml").returncode == 0
    # Fixing the bad schema gives its flow and takes the error file away.
    drop_text(folder, "bad", (SCHEMAS / "tasks.schema.json").read_text())
    wait_for_file(folder / "bad.flow.yaml")
    wait_for(lambda: not (folder / "bad.error.txt").exists(), 5, "the error file to go")
    assert watcher.poll() is None
    stop(env, watcher)


def test_a_name_too_long_for_its_error_file_has_its_faults_told_in_the_log(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder)
    name = "n" * 240  # NAME.error.txt fits, but not the temporary file it is written through
    drop_text(folder, name, '{"type": "array", "items": {"type": "objekt"}}')
    told = f"{name}: refused: {name}.error.txt cannot be written in {folder}: File name too long"
    wait_for(lambda: told in stdout(env), 10, "the refusal")
    assert (
        f"{name}: refused: drop/{name}.schema.json: /items/type: not a valid JSON Schema: "
        "'objekt' is not valid under any of the given schemas"
    ) in stdout(env)
    assert "see drop/" not in stdout(env)
    assert watcher.poll() is None
    stop(env, watcher)


def test_replacing_a_schema_regenerates_its_flow(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder)
    drop(folder, "company", "company")
    flow = folder / "company.flow.yaml"
    wait_for_file(flow)
    first = flow.read_text()
    assert "maxActive: 2" in first and "order: post" in first
    schema = json.loads((SCHEMAS / "company.schema.json").read_text())
    schema["x-meta"] = {"name": "company", "maxActive": 3, "pattern": "bfs", "order": "pre"}
    drop_text(folder, "company", json.dumps(schema))
    elapsed = wait_for_file(flow, unlike=first)
    assert elapsed < WITHIN, f"the new flow took {elapsed:.2f} s"
    second = flow.read_text()
    assert "maxActive: 3" in second and "pattern: bfs" in second and "order: pre" in second
    assert validate(env, flow).returncode == 0
    stop(env, watcher)


def test_a_schema_already_in_the_folder_is_handled_at_start(env: Env) -> None:
    folder = env.root / "drop"
    folder.mkdir()
    drop(folder, "tasks", "tasks")
    watcher = start_watch(env, folder)
    wait_for_file(folder / "tasks.flow.yaml")
    assert validate(env, folder / "tasks.flow.yaml").returncode == 0
    stop(env, watcher)


def test_run_runs_each_flow_into_runs_name(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder, "--run")
    drop(folder, "tasks", "tasks")
    elapsed = wait_for_file(folder / "tasks.flow.yaml")
    assert elapsed < WITHIN, f"the flow took {elapsed:.2f} s"
    wait_for_file(folder / "runs" / "tasks" / "report.json", 60)
    report = run_report(folder, "tasks")
    assert report["state"] == "succeeded" and report["flow"] == "tasks"
    tasks = json.loads((SCHEMAS / "tasks.data.json").read_text())
    assert len(report["units"]) == len(tasks) + 1
    summary = json.loads(Path(report["outputs"], "report.json").read_text())
    assert summary["subtree"]["nodes"] == len(tasks) + 1  # the array, and each task
    wait_for(lambda: "tasks: run succeeded" in stdout(env), 5, "the run's line")
    stop(env, watcher)


def test_with_run_a_flow_whose_run_cannot_start_writes_an_error_file_and_the_watcher_goes_on(
    env: Env,
) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder, "--run")
    drop_text(folder, "nodata", '{"type": "array", "items": {}}')  # the data is optional
    wait_for_file(folder / "nodata.error.txt")
    assert (folder / "nodata.error.txt").read_text() == (
        "drop/nodata.flow.yaml: /spec/inputs/data/path: input file not found: "
        "drop/nodata.data.json\n"
    )
    wait_for(
        lambda: "nodata: its run cannot start, see drop/nodata.error.txt" in stdout(env),
        5,
        "the watcher to say so",
    )
    assert (folder / "nodata.flow.yaml").is_file()
    assert not list((folder / "runs").glob("nodata*")), "no run folder, no link"
    # The watcher goes on: a later drop is generated and run.
    drop(folder, "tasks", "tasks")
    wait_for_file(folder / "runs" / "tasks" / "report.json", 60)
    assert run_report(folder, "tasks")["state"] == "succeeded"
    ran = (folder / "runs" / "tasks").resolve()
    # A run that cannot start leaves runs/NAME at the earlier run.
    (folder / "tasks.data.json").unlink()
    drop_text(folder, "tasks", (SCHEMAS / "tasks.schema.json").read_text())
    wait_for_file(folder / "tasks.error.txt")
    assert (folder / "runs" / "tasks").resolve() == ran
    assert sorted(path.name for path in (folder / "runs").iterdir()) == ["tasks", ran.name]
    assert watcher.poll() is None
    stop(env, watcher)


SLOW = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "slow",
    "type": "array",
    "items": {
        "type": "integer",
        "x-meta": {
            "run": {
                "command": [
                    "python3",
                    "-c",
                    "import time; open('started', 'w').close(); time.sleep(60)",
                ]
            }
        },
    },
}


def test_ctrl_c_during_a_run_cancels_it_and_stops_the_watcher(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder, "--run")
    (folder / "slow.data.json").write_text("[1, 2]")
    drop_text(folder, "slow", json.dumps(SLOW))
    wait_for_file(folder / "started", 30)
    stop(env, watcher)  # one Ctrl-C: the run's steps are stopped, and so is the watcher
    assert run_report(folder, "slow")["state"] == "cancelled"
    assert "slow: run cancelled" in stdout(env)


def test_a_second_drop_with_run_keeps_the_previous_run(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder, "--run")
    drop(folder, "tasks", "tasks")
    runs = folder / "runs"
    wait_for_file(runs / "tasks" / "report.json", 60)
    first = (runs / "tasks" / "report.json").read_bytes()
    first_files = sorted(
        str(p.relative_to(runs / "tasks")) for p in (runs / "tasks").rglob("*") if p.is_file()
    )
    # The same drop again (a rewrite of the schema) regenerates and runs again.
    drop_text(folder, "tasks", (SCHEMAS / "tasks.schema.json").read_text())
    wait_for(lambda: stdout(env).count("tasks: run succeeded") == 2, 60, "two runs")
    latest = (runs / "tasks").resolve()
    (kept,) = [p for p in runs.iterdir() if not p.is_symlink() and p != latest]
    assert kept.name.startswith("tasks.")
    assert latest.name.startswith("tasks.")
    # Nothing of the first run is lost: it stays where it ran, its report byte for byte.
    assert (kept / "report.json").read_bytes() == first
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == first_files
    assert run_report(folder, "tasks")["state"] == "succeeded"
    assert (runs / "tasks" / "report.json").read_bytes() != first
    stop(env, watcher)


def test_an_earlier_run_still_names_its_own_outputs(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder, "--run")
    drop(folder, "tasks", "tasks")
    runs = folder / "runs"
    wait_for_file(runs / "tasks" / "report.json", 60)
    drop_text(folder, "tasks", (SCHEMAS / "tasks.schema.json").read_text())
    wait_for(lambda: stdout(env).count("tasks: run succeeded") == 2, 60, "two runs")
    stop(env, watcher)
    latest = (runs / "tasks").resolve()
    (kept,) = [p for p in runs.iterdir() if not p.is_symlink() and p != latest]
    report = json.loads((kept / "report.json").read_text())
    assert Path(report["outputs"]).is_relative_to(kept)
    assert Path(report["outputs"]).is_dir()


class _NamedGenerator(FixedGenerator):
    """Outscores every built-in generator; stalls on descriptions whose name starts 'slow'."""

    def score(self, description: Description) -> float:
        return 1000.0

    def generate(self, description: Description) -> dict[str, Any]:
        if description.path.name.startswith("slow"):
            time.sleep(60)
        return super().generate(description)


def _watch_in_thread(watcher: Watcher) -> list[WatchEvent]:
    told: list[WatchEvent] = []
    threading.Thread(target=watcher.watch, args=(told.append,), daemon=True).start()
    return told


def test_a_slow_description_holds_up_no_other_and_is_stopped_at_the_limit(
    meta_plugins: PluginLoader, tmp_path: Path
) -> None:
    watcher = Watcher(tmp_path, plugins=meta_plugins(_NamedGenerator("named")), time_limit=3)
    told = _watch_in_thread(watcher)
    (tmp_path / "slow.schema.json").write_text('{"type": "object"}')
    time.sleep(0.5)
    (tmp_path / "quick.schema.json").write_text('{"type": "object"}')
    took = wait_for_file(tmp_path / "quick.flow.yaml")
    assert took < 2.5, f"the quick description waited {took:.1f} s behind the slow one"
    wait_for_file(tmp_path / "slow.error.txt")
    assert (tmp_path / "slow.error.txt").read_text() == (
        f"{tmp_path / 'slow.schema.json'}: /: generating took longer than 3 s: stopped "
        "(other files are not held up)\n"
    )
    assert not (tmp_path / "slow.flow.yaml").exists()
    wait_for(lambda: len(told) == 2, 5, "both to be told")
    assert [event.name for event in told] == ["quick", "slow"]


def test_yaml_descriptions_and_data_pair_by_name(env: Env) -> None:
    folder = env.root / "drop"
    watcher = start_watch(env, folder)
    schema = json.loads((SCHEMAS / "company.schema.json").read_text())
    data = json.loads((SCHEMAS / "company.data.json").read_text())
    (folder / "org.data.yaml").write_text(yaml.safe_dump(data))
    temporary = folder / ".org.tmp"
    temporary.write_text(yaml.safe_dump(schema))
    os.replace(temporary, folder / "org.schema.yaml")
    wait_for_file(folder / "org.flow.yaml")
    assert "path: org.data.yaml" in (folder / "org.flow.yaml").read_text()
    assert validate(env, folder / "org.flow.yaml").returncode == 0
    stop(env, watcher)


def test_a_schema_replaced_by_one_refused_leaves_no_stale_flow(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path)
    drop(tmp_path, "tasks", "tasks")
    assert watcher.generate("tasks").flow == tmp_path / "tasks.flow.yaml"
    drop_text(tmp_path, "tasks", '{"type": "array", "items": {"type": "objekt"}}')
    event = watcher.generate("tasks")
    assert event.error == tmp_path / "tasks.error.txt"
    assert not (tmp_path / "tasks.flow.yaml").exists()


def test_the_log_shows_a_name_holding_a_newline_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    _tell(WatchEvent("a\nb", error=Path("a\nb.error.txt")))
    assert capsys.readouterr().out == "a\\nb: refused, see a\\nb.error.txt\n"

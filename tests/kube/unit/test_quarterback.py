"""The quarterback with real launchers: each slot container is played by a launcher process on
this machine, and an image swap by restarting that process (as the kubelet restarts a container
whose image was patched). The steps are real processes; data moves through the shared scratch."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meta.engine.driver import Feeder, PodTask
from meta.kube.quarterback import install_launcher
from meta.kube.quarterback.driver import PodPaths
from meta.kube.quarterback.main import run_quarterback
from meta.kube.types import PodBrief

FILE = "metaflow team/pipe"
PY = sys.executable


class FakePod:
    """Slot containers as launcher processes; `swap` restarts one with another 'image'."""

    def __init__(self, paths: PodPaths, images: list[str]) -> None:
        self.paths = paths
        self.launcher = install_launcher(os.path.join(paths.scratch, "..", "bin"))
        self.images = list(images)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.swaps: list[tuple[int, str]] = []
        for index in range(len(images)):
            self.processes.append(self._start(index))

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "FAKE_IMAGE": self.images[index]}
        return subprocess.Popen([PY, self.launcher, self.paths.socket, str(index)], env=env)

    async def swap(self, index: int, image: str) -> None:
        self.swaps.append((index, image))
        self.processes[index].kill()
        self.processes[index].wait()
        self.images[index] = image
        self.processes[index] = self._start(index)

    def close(self) -> list[int | None]:
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=10))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(None)
        return codes


@pytest.fixture
def paths(tmp_path: Path) -> PodPaths:
    layout = PodPaths(
        scratch=str(tmp_path / "scratch"),
        upstream=str(tmp_path / "upstream"),
        output=str(tmp_path / "output"),
        work=str(tmp_path / "work"),
        result=str(tmp_path / "result"),
    )
    for folder in (layout.scratch, layout.upstream, layout.work):
        os.makedirs(folder)
    return layout


def py_step(name: str, image: str, code: str) -> dict[str, Any]:
    return {"name": name, "run": {"image": image, "command": [PY, "-c", code]}}


WRITE_IMAGE = (
    "import os, pathlib, json\n"
    "out = pathlib.Path(os.environ['META_OUTPUT'])\n"
    "up = pathlib.Path(os.environ['META_UPSTREAM'])\n"
    "seen = sorted(p.name for p in up.iterdir())\n"
    "prior = [json.loads((up / n / 'trail.json').read_text()) for n in seen]\n"
    "trail = (prior[0] if prior else []) + [os.environ['FAKE_IMAGE']]\n"
    "(out / 'trail.json').write_text(json.dumps(trail))\n"
    "mark = os.environ['META_UNIT_ID'].replace('/', '_')\n"
    "pathlib.Path(os.environ['META_SCRATCH'], mark).touch()\n"
)


def write_work(
    paths: PodPaths,
    section: dict[str, Any],
    slots: list[str],
    inputs: dict[str, Any] | None = None,
    fed_by: list[Feeder] | None = None,
) -> PodTask:
    flow = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "pipe"},
        "spec": {"root": section, **({"inputs": inputs} if inputs else {})},
    }
    task = PodTask(
        id=f"pipe/{section['name']}",
        name=section["name"],
        section="pipe",
        file=FILE,
        pointer="/spec/root",
        input={},
        iteration=None,
        hidden=(),
        upstream=[],
        attempt=1,
        max_active=section.get("maxActive", 1),
        fed_by=fed_by or [],
    )
    document = PodBrief(task, flow, FILE, slots, "framework", "team/pipe").document()
    Path(paths.work, "task.json").write_text(document)
    return task


@pytest.fixture
def run_pod(paths: PodPaths, tmp_path: Path) -> Iterator[Any]:
    pods: list[FakePod] = []

    def go(slots: list[str], stop_when: Path | None = None) -> tuple[int, str, FakePod]:
        """Run the pod; with `stop_when`, stop it (as its SIGTERM does) once that file is."""
        pod = FakePod(paths, slots)
        pods.append(pod)
        termination = str(tmp_path / "termination-log")

        async def running() -> int:
            stop = asyncio.Event()

            async def watch() -> None:
                while stop_when is not None and not stop_when.exists():
                    await asyncio.sleep(0.02)
                if stop_when is not None:
                    stop.set()

            watching = asyncio.ensure_future(watch())
            try:
                return await run_quarterback(paths, pod.swap, termination, stop)
            finally:
                watching.cancel()

        code = asyncio.run(running())
        return code, Path(termination).read_text(), pod

    yield go
    for pod in pods:
        pod.close()


def test_a_sequence_hands_data_over_in_scratch_and_swaps_images_in_place(
    paths: PodPaths, run_pod: Any
) -> None:
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [
            py_step("one", "img-a", WRITE_IMAGE),
            py_step("two", "img-b", WRITE_IMAGE),
            py_step("three", "img-a", WRITE_IMAGE),
        ],
    }
    write_work(paths, section, ["img-a"])
    code, message, pod = run_pod(["img-a"])
    assert code == 0, message
    assert json.loads(Path(paths.output, "trail.json").read_text()) == ["img-a", "img-b", "img-a"]
    assert pod.swaps == [(0, "img-b"), (0, "img-a")], "one slot, swapped in place twice"
    report = json.loads(message)
    assert report == {"unitsRun": 3, "peakActive": 1, "imageSwaps": 2}
    shared = sorted(p.name for p in Path(paths.scratch).iterdir() if not p.name.startswith("."))
    assert shared == ["pipe_steps_one", "pipe_steps_three", "pipe_steps_two"], "one META_SCRATCH"
    assert pod.close() == [0], "the launchers exit when the section ends"


def test_a_fanout_runs_no_more_units_than_slots_and_gathers(paths: PodPaths, run_pod: Any) -> None:
    gather = (
        "import os, pathlib\n"
        "up = pathlib.Path(os.environ['META_UPSTREAM'])\n"
        "count = len(list(up.iterdir()))\n"
        "pathlib.Path(os.environ['META_OUTPUT'], 'count').write_text(str(count))\n"
    )
    section = {
        "name": "wide",
        "scope": "micro",
        "pattern": "fanout",
        "maxActive": 2,
        "over": {"input": "items"},
        "visit": py_step("item-{{ item }}", "img", "import time; time.sleep(0.05)"),
        "gather": py_step("count", "img", gather),
    }
    write_work(paths, section, ["img", "img"], inputs={"items": {"value": list(range(6))}})
    code, message, _pod = run_pod(["img", "img"])
    assert code == 0, message
    assert Path(paths.output, "count").read_text() == "6"
    report = json.loads(message)
    assert report["peakActive"] == 2 and report["imageSwaps"] == 0 and report["unitsRun"] == 7


def test_a_failing_step_fails_the_pod_with_its_unit_and_stderr(
    paths: PodPaths, run_pod: Any
) -> None:
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [
            py_step("fine", "img", "pass"),
            py_step("boom", "img", "import sys; sys.stderr.write('the last words'); sys.exit(4)"),
            py_step("never", "img", "raise SystemExit(9)"),
        ],
    }
    write_work(paths, section, ["img"])
    code, message, _ = run_pod(["img"])
    assert code == 1
    assert message.startswith("unit pipe/steps/boom exited with code 4")
    assert "the last words" in message


def test_the_attempts_of_a_retried_step_are_kept_for_the_operators_journal(
    paths: PodPaths, run_pod: Any
) -> None:
    flaky = (
        "import os, sys\n"
        "if os.environ['META_ATTEMPT'] == '1':\n"
        "    sys.stderr.write('first try fails')\n"
        "    sys.exit(3)\n"
    )
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [py_step("fine", "img", "pass"), {**py_step("flaky", "img", flaky), "retries": 1}],
    }
    write_work(paths, section, ["img"])
    code, message, _ = run_pod(["img"])
    assert code == 0, message
    kept = json.loads(Path(paths.result, "attempts.json").read_text())
    assert kept["notKept"] == 0
    attempts = [
        (r["id"], r["attempts"], r["state"], r["exit_code"], r["reason"], r["stderr_tail"])
        for r in kept["records"]
    ]
    assert attempts == [
        ("pipe/steps/flaky", 1, "failed", 3, "exited with code 3", "first try fails"),
        ("pipe/steps/flaky", 2, "succeeded", 0, "", ""),
    ], "only the unit tried more than once"


def test_a_stopped_pod_stops_its_units_and_runs_its_finally_units_in_its_slots(
    paths: PodPaths, run_pod: Any, tmp_path: Path
) -> None:
    started, seen = tmp_path / "started", tmp_path / "seen"
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [
            py_step("write", "img", WRITE_IMAGE),
            py_step("long", "img", f"import pathlib, time; pathlib.Path({str(started)!r}).touch()"
                    "; time.sleep(60)"),
        ],
        "finally": [
            py_step(
                "check",
                "img",
                "import os, pathlib\n"
                "marks = sorted(p.name for p in pathlib.Path(os.environ['META_SCRATCH']).iterdir()"
                " if not p.name.startswith('.'))\n"
                f"pathlib.Path({str(seen)!r}).write_text(' '.join(marks))\n",
            )
        ],
    }  # fmt: skip
    write_work(paths, section, ["img"])
    begun = time.monotonic()
    code, message, pod = run_pod(["img"], stop_when=started)
    assert code == 1 and message.startswith("stopped before its end"), message
    assert time.monotonic() - begun < 30, "the long step was stopped"
    assert seen.read_text() == "pipe_steps_write", "the finally unit ran in the pod's scratch"
    assert pod.close() == [0], "the launchers exit when the section ends"


def test_work_the_flow_language_refuses_ends_with_code_2(paths: PodPaths, run_pod: Any) -> None:
    section = {"name": "steps", "scope": "micro", "pattern": "sequence", "units": []}
    write_work(paths, section, ["img"])
    code, message, _ = run_pod(["img"])
    assert code == 2
    assert message.startswith(f"{FILE}: /spec/root/units")


def test_a_cached_step_in_a_pod_is_reused_by_the_next_pod_from_the_stores_cache(
    tmp_path: Path, paths: PodPaths
) -> None:
    """The quarterback's cache is the store's (/meta/cache): a second pod of the same section
    (another flow's, a fresh scratch) restores the cached step into its scratch, where the step
    after it reads it, and runs only that step."""
    side = tmp_path / "ran.txt"
    count = (
        "import os, pathlib\n"
        f"with open({str(side)!r}, 'a') as f: f.write(os.environ['META_UNIT_ID'] + '\\n')\n"
    )
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [
            {**py_step("slow", "img-a", count + WRITE_IMAGE), "cache": True},
            py_step("after", "img-a", count + WRITE_IMAGE),
        ],
    }
    cached = PodPaths(
        scratch=paths.scratch, upstream=paths.upstream, output=paths.output, work=paths.work,
        cache=str(tmp_path / "store-cache"), result=str(tmp_path / "result"),
    )  # fmt: skip
    os.makedirs(cached.cache)
    reports = []
    for _ in range(2):
        for folder in (cached.scratch, cached.output):
            subprocess.run(["rm", "-rf", folder], check=True)
        os.makedirs(cached.scratch)
        write_work(cached, section, ["img-a"])
        code, message, _pod = run_pod_at(cached, tmp_path, ["img-a"])
        assert code == 0, message
        reports.append(json.loads(message))
        trail = json.loads(Path(cached.output, "trail.json").read_text())
        assert trail == ["img-a", "img-a"], "the step after reads the restored outputs"
    assert side.read_text().splitlines() == [
        "pipe/steps/slow",
        "pipe/steps/after",
        "pipe/steps/after",
    ]
    assert reports[1]["unitsRun"] == 1 and reports[1]["unitsCached"] == 1
    assert "unitsCached" not in reports[0]
    # Beside the section's result, for the operator to record the hit as it records its own.
    hits = json.loads(Path(cached.result, "cached.json").read_text())
    assert hits == [
        {"id": "pipe/steps/slow", "name": "slow", "section": "pipe/steps", "from": "team/pipe"}
    ]


def run_pod_at(paths: PodPaths, tmp_path: Path, slots: list[str]) -> tuple[int, str, FakePod]:
    pod = FakePod(paths, slots)
    try:
        termination = str(tmp_path / "termination-log")
        code = asyncio.run(run_quarterback(paths, pod.swap, termination))
        return code, Path(termination).read_text(), pod
    finally:
        pod.close()


RESULT = (
    "import os, pathlib, sys\npathlib.Path(os.environ['META_RESULT']).write_text(sys.argv[1])\n"
)


def test_results_and_conditions_inside_the_pod_and_the_sections_result_kept(
    paths: PodPaths, run_pod: Any
) -> None:
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "dag",
        "units": [
            {
                "name": "first",
                "when": "{{ upstream.outside.result.go and upstream.gone.state == 'skipped' }}",
                "run": {"image": "img-a", "command": [PY, "-c", RESULT, '{"n": 4}']},
            },
            {
                "name": "never",
                "dependsOn": ["first"],
                "when": "upstream.first.result.n > 10",
                "run": {"image": "img-a", "command": [PY, "-c", RESULT, "1"]},
            },
            {
                "name": "last",
                "dependsOn": ["first", "never"],
                "run": {
                    "image": "img-a",
                    "command": [PY, "-c", RESULT, "{{ upstream.first.result.n * 2 }}"],
                },
            },
        ],
    }
    fed_by = [
        ("outside", "pipe/outside", "succeeded", {"go": True}, False, False),
        ("gone", "pipe/g", "skipped", None, False, False),
    ]
    write_work(paths, section, ["img-a"], fed_by=fed_by)
    code, message, _ = run_pod(["img-a"])
    assert code == 0, message
    assert json.loads(message)["unitsRun"] == 2
    assert json.loads(Path(paths.result, "result.json").read_text()) == 8


def test_a_result_past_64_kib_fails_the_pod_saying_why(paths: PodPaths, run_pod: Any) -> None:
    big = "import os, pathlib\npathlib.Path(os.environ['META_RESULT']).write_text('1' * 70000)\n"
    section = {
        "name": "steps",
        "scope": "micro",
        "pattern": "sequence",
        "units": [py_step("big", "img-a", big)],
    }
    write_work(paths, section, ["img-a"])
    code, message, _ = run_pod(["img-a"])
    assert code == 1
    assert (
        "unit pipe/steps/big exited with code 0, but its result ($META_RESULT) is 70000 bytes"
        in message
    )


def test_steps_start_in_the_briefs_folder_when_it_names_one(
    paths: PodPaths, run_pod: Any, tmp_path: Path
) -> None:
    """A flow generated from a MetaSchema runs in its files' folder: its micro steps too (a
    brief naming no folder leaves each step in its image's working directory)."""
    folder = tmp_path / "store" / "uid" / ".files"
    folder.mkdir(parents=True)
    code = (
        "import os, pathlib; pathlib.Path(os.environ['META_OUTPUT'], 'cwd').write_text(os.getcwd())"
    )
    section = {
        "name": "s",
        "scope": "micro",
        "pattern": "sequence",
        "units": [py_step("here", "a", code)],
    }
    task = write_work(paths, section, ["a"])
    brief = PodBrief.read(paths.work)
    moved = PodBrief(task, brief.flow, FILE, ["a"], "framework", directory=str(folder))
    Path(paths.work, "task.json").write_text(moved.document())
    exit_code, _, _ = run_pod(["a"])
    assert exit_code == 0
    assert Path(paths.output, "cwd").read_text() == str(folder)

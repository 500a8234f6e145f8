"""The cache in the engine: a hit runs nothing and is reported `cached` with its source run; a
key changes with what decides a result (command, env, image, input, files, upstream outputs,
version) and with nothing else; a section is cached whole; a corrupt entry is a miss."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from meta.cachedir import CacheDir
from meta.engine import caching
from meta.engine.caching import StoreCache
from meta.engine.driver import StepTask
from meta.engine.frontiers import Done
from meta.errors import RunFailed
from meta.plan.plan import Plan
from tests.engine.fakes import (
    ALWAYS,
    FakeDriver,
    FakeJournal,
    FakeRunning,
    RecordingListener,
    journal_of,
    plan_of,
    run,
    section,
    step,
    write_flow,
)


class StoringDriver(FakeDriver):
    """A fake driver whose steps write outputs into a store folder: their command and what
    their upstream held, so that outputs differ exactly when what decides them does."""

    def __init__(self, store: Path, **options: Any) -> None:
        super().__init__(**options)
        self.store = store
        self.salt = ""
        """Added to every output: a step that gives other outputs for the same definition."""

    async def start(self, task: StepTask) -> FakeRunning:
        folder = Path(self.outputs(task.id))
        folder.mkdir(parents=True, exist_ok=True)
        upstream = {name: _read(Path(self.outputs(unit))) for name, unit in task.upstream}
        made = {"command": list(task.command), "upstream": upstream, "salt": self.salt}
        (folder / "out.json").write_text(json.dumps(made, sort_keys=True))
        return await super().start(task)

    def outputs(self, unit_id: str) -> str:
        return str(self.store / unit_id / "@outputs")


def _read(folder: Path) -> Any:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.json"))}


class Runs:
    """Runs of plans against one cache directory, each with a store and a name of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.cache = CacheDir(str(tmp_path / "cache"))
        self.count = 0

    def go(
        self, plan: Plan, **driver_options: Any
    ) -> tuple[StoringDriver, RecordingListener, Done]:
        self.count += 1
        name = f"run{self.count}"
        driver = StoringDriver(self.tmp / name / "store", **driver_options)
        listener = RecordingListener()
        journal = FakeJournal()
        store = StoreCache(self.cache, run=name, outputs=driver.outputs)
        done = run(plan, driver, listener=listener, journal=journal, cache=store)
        driver.journal = journal  # type: ignore[attr-defined]
        return driver, listener, done


def cached(listener: RecordingListener) -> dict[str, str]:
    return {r.id: r.cached_from for r in listener.finished if r.state == "cached"}


def dag(*units: dict[str, Any]) -> dict[str, Any]:
    return section("d", "dag", units=list(units))


def test_a_second_run_reuses_every_cached_step_and_runs_nothing(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "flow",
        dag(step("a", "make", "a"), step("b", "make", "b", dependsOn=["a"])),
        defaults={"cache": True},
    )
    runs = Runs(tmp_path)
    first, first_seen, _ = runs.go(plan)
    assert first.start_ids() == ["t/d/a", "t/d/b"]
    assert cached(first_seen) == {}

    second, seen, done = runs.go(plan)
    assert second.start_ids() == [], "a hit starts nothing"
    assert cached(seen) == {"t/d/a": "run1", "t/d/b": "run1"}
    assert [(r.id, r.state) for r in second.journal.ended] == [  # type: ignore[attr-defined]
        ("t/d/a", "cached"),
        ("t/d/b", "cached"),
    ], "hits are journaled: a resumed run does not look them up again"
    assert done.unit_id == "t/d/b"
    restored = Path(second.outputs("t/d/b")) / "out.json"
    assert json.loads(restored.read_text())["command"] == ["make", "b"]
    assert restored.stat().st_nlink > 1, "restored by a hard link, not a copy"


def test_a_resumed_run_whose_failed_unit_the_cache_mends_runs_its_finally_units_again(
    tmp_path: Path,
) -> None:
    # b failed in the run's first session, and finished since in another run: the resumed
    # session takes it from the cache, and the finally unit that was shown it failed runs again.
    plan = plan_of(tmp_path / "flow", step("b", "make", "b", cache=True), final=[step("notify")])
    failed = StoringDriver(tmp_path / "run1" / "store", fail={"t/b": ALWAYS})
    journal = FakeJournal()
    with pytest.raises(RunFailed):
        run(
            plan,
            failed,
            journal=journal,
            cache=StoreCache(CacheDir(str(tmp_path / "cache")), run="run1", outputs=failed.outputs),
        )
    Runs(tmp_path).go(plan)  # another run: b succeeds and is kept in the cache
    finished = [r for r in journal.ended if r.state == "succeeded"]
    assert [r.id for r in finished] == ["t/finally/notify"]
    resumed = StoringDriver(tmp_path / "run1" / "store")
    cache = StoreCache(CacheDir(str(tmp_path / "cache")), run="run1", outputs=resumed.outputs)
    run(plan, resumed, journal=journal_of(finished), cache=cache)
    assert resumed.start_ids() == ["t/finally/notify"]


def test_an_edited_flow_runs_again_only_what_the_edit_changed(tmp_path: Path) -> None:
    runs = Runs(tmp_path)

    def flow(c_command: str) -> Plan:
        return plan_of(
            tmp_path / "flow",
            dag(
                step("a", "make", "a"),
                step("b", "make", "b", dependsOn=["a"]),
                step("c", "make", c_command),
                step("d", "join", dependsOn=["b", "c"]),
            ),
            defaults={"cache": True},
        )

    runs.go(flow("c"))
    edited, seen, _ = runs.go(flow("c2"))
    assert sorted(edited.start_ids()) == ["t/d/c", "t/d/d"], "c changed; d reads c's outputs"
    assert sorted(cached(seen)) == ["t/d/a", "t/d/b"]


def test_a_unit_moved_in_its_flow_keeps_its_key(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.go(plan_of(tmp_path / "one", dag(step("a", "make", "a")), defaults={"cache": True}))
    moved = dag(step("new", "other"), step("a", "make", "a"))
    driver, seen, _ = runs.go(plan_of(tmp_path / "two", moved, defaults={"cache": True}))
    assert driver.start_ids() == ["t/d/new"]
    assert cached(seen) == {"t/d/a": "run1"}


def test_the_key_changes_with_env_image_version_and_input(tmp_path: Path) -> None:
    runs = Runs(tmp_path)

    def one(env: str = "s3cret-value", image: str = "img:1", cache: Any = True, n: int = 1) -> Plan:
        unit = step("s", "make", "{{ inputs.n }}", cache=cache)
        unit["run"].update(env={"TOKEN": env}, image=image)
        return plan_of(tmp_path / "flow", dag(unit), inputs={"n": {"value": n}})

    runs.go(one())
    assert runs.go(one())[0].start_ids() == [], "the same step: a hit"
    for variant in ({"env": "other"}, {"image": "img:2"}, {"cache": {"version": "2"}}, {"n": 2}):
        assert runs.go(one(**variant))[0].start_ids() == ["t/d/s"], variant
    held = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert b"s3cret-value" not in held, "env values are kept by digest only"


def test_upstream_outputs_that_differ_miss_though_the_definition_is_the_same(
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path)
    plan = plan_of(
        tmp_path / "flow",
        dag(step("a", "make", "a"), step("b", "make", "b", dependsOn=["a"], cache=True)),
    )
    runs.go(plan)
    same, seen, _ = runs.go(plan)
    assert same.start_ids() == ["t/d/a"] and cached(seen) == {"t/d/b": "run1"}
    other = StoringDriver(tmp_path / "salted" / "store")
    other.salt = "another day"
    run(plan, other, cache=StoreCache(runs.cache, run="salted", outputs=other.outputs))
    assert other.start_ids() == ["t/d/a", "t/d/b"], "a wrote other bytes: b runs again"


def test_a_file_the_step_names_counts_by_its_content(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    script = tmp_path / "flow" / "work.py"
    plan = plan_of(tmp_path / "flow", dag(step("s", "python3", "work.py", cache=True)))
    script.write_text("print(1)\n")
    runs.go(plan)
    assert runs.go(plan)[0].start_ids() == []
    script.write_text("print(2)\n")
    assert runs.go(plan)[0].start_ids() == ["t/d/s"], "the script beside the flow changed"


def test_a_file_or_folder_named_otherwise_counts_by_its_content(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    data = tmp_path / "flow" / "data"
    flow_dir = str(tmp_path / "flow")
    units = (
        step("folder", "cat-all", "data", cache=True),
        step("inside", "cat", flow_dir + "/data/a.txt", cache=True),
        step("option", "cat", "--file=data/a.txt", cache=True),
        step("elsewhere", "cat", str(tmp_path / "log.txt"), cache=True),
    )
    plan = plan_of(tmp_path / "flow", dag(*units))
    data.mkdir(parents=True)
    (data / "a.txt").write_text("v1")
    (tmp_path / "log.txt").write_text("one")
    runs.go(plan)
    assert runs.go(plan)[0].start_ids() == []
    (data / "a.txt").write_text("v2")
    (tmp_path / "log.txt").write_text("two")
    assert sorted(runs.go(plan)[0].start_ids()) == ["t/d/folder", "t/d/inside", "t/d/option"], (
        "a file outside the flow's folder that is no input counts by its name only"
    )


def test_a_folder_past_the_bounds_counts_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(caching, "MAX_FOLDER_FILES", 2)
    runs = Runs(tmp_path)
    data = tmp_path / "flow" / "data"
    data.mkdir(parents=True)
    for name in "abc":
        (data / name).write_text("v1")
    plan = plan_of(tmp_path / "flow", dag(step("folder", "cat-all", "data", cache=True)))
    runs.go(plan)
    (data / "a").write_text("v2")
    assert runs.go(plan)[0].start_ids() == []
    said = [r.getMessage() for r in caplog.records if r.name == "meta.engine.caching"]
    assert said and all(f"note: {data} holds more than 2 files" in line for line in said), said


def test_cache_false_on_a_step_overrides_the_defaults(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    plan = plan_of(
        tmp_path / "flow",
        dag(step("a", "make", "a"), step("live", "fetch", cache=False)),
        defaults={"cache": True},
    )
    runs.go(plan)
    driver, seen, _ = runs.go(plan)
    assert driver.start_ids() == ["t/d/live"]
    assert cached(seen) == {"t/d/a": "run1"}


def test_a_cached_section_is_one_hit_with_its_combined_outputs(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    fan = section(
        "fan", "fanout", over={"input": "items"}, visit=step("v-{{ item }}", "make", "{{ item }}"),
        cache=True,
    )  # fmt: skip
    root = section("seq", "sequence", units=[fan, step("after", "sum")])
    defaults = {"cache": True}
    plan = plan_of(
        tmp_path / "flow", root, inputs={"items": {"value": [1, 2, 3]}}, defaults=defaults
    )
    first, _, _ = runs.go(plan)
    assert len(first.start_ids()) == 4
    second, seen, _ = runs.go(plan)
    assert second.start_ids() == [], "the whole fan-out is one hit, and what reads it another"
    assert cached(seen) == {"t/seq/fan": "run1", "t/seq/after": "run1"}
    restored = Path(second.outputs("t/seq/fan"))
    assert sorted(p.name for p in restored.iterdir()) == ["v-1", "v-2", "v-3"]
    outputs = {
        json.loads((restored / f"v-{n}" / "out.json").read_text())["command"][1] for n in "123"
    }
    assert outputs == {"1", "2", "3"}
    edited = plan_of(
        tmp_path / "flow", root, inputs={"items": {"value": [1, 2, 4]}}, defaults=defaults
    )
    third, seen, _ = runs.go(edited)
    assert third.start_ids() == ["t/seq/fan/2/v-4", "t/seq/after"], "inside, steps cache too"
    assert cached(seen) == {"t/seq/fan/0/v-1": "run1", "t/seq/fan/1/v-2": "run1"}


def test_a_corrupt_entry_is_a_miss_and_is_made_again(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    plan = plan_of(tmp_path / "flow", dag(step("a", "make", "a", cache=True)))
    runs.go(plan)
    entries = list(runs.cache.entries())
    assert len(entries) == 1
    kept = Path(entries[0].outputs) / "out.json"
    os.chmod(kept, 0o644)
    kept.write_text("changed behind the cache's back")
    assert runs.go(plan)[0].start_ids() == ["t/d/a"], "outputs unlike the manifest: a miss"
    Path(entries[0].path, "entry.json").write_text("{not json")
    assert runs.go(plan)[0].start_ids() == ["t/d/a"], "an unreadable entry: a miss"
    driver, seen, _ = runs.go(plan)
    assert driver.start_ids() == [] and cached(seen) == {"t/d/a": "run3"}, "made again by run3"


def test_without_a_cache_a_unit_that_says_cache_runs_as_any_other(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "flow", dag(step("a", "make", "a", cache=True)))
    for _ in range(2):
        driver = FakeDriver()
        run(plan, driver)
        assert driver.start_ids() == ["t/d/a"]


def test_a_cached_section_misses_when_a_flow_it_references_changes(tmp_path: Path) -> None:
    runs = Runs(tmp_path)

    def child(command: str) -> None:
        write_flow(
            tmp_path / "flow" / "sub",
            section("inner", "sequence", units=[step("x", command)]),
            name="child",
            filename="child.flow.yaml",
        )

    ref = {"name": "sub", "flowRef": {"path": "sub/child.flow.yaml"}}
    top = section("top", "sequence", units=[ref], cache=True)
    child("first")
    plan = plan_of(tmp_path / "flow", top)
    runs.go(plan)
    assert runs.go(plan)[0].start_ids() == []
    child("second")
    driver, _, _ = runs.go(plan_of(tmp_path / "flow", top))
    assert driver.start_ids() == ["t/top/sub/inner/x"], "the referenced flow's file changed"


def test_a_cached_section_misses_when_what_a_referenced_flow_reads_changes(
    tmp_path: Path,
) -> None:
    """Not only the referenced flow's file: its file inputs, the files its steps name (beside
    it) and the flows it references in turn."""
    runs = Runs(tmp_path)
    sub = tmp_path / "flow" / "sub"
    write_flow(sub, step("g", "grand"), name="grand", filename="grand.flow.yaml")
    inner = section(
        "inner", "sequence",
        units=[step("x", "python3", "s.py", "{{ inputs.d }}"),
               {"name": "g", "flowRef": {"path": "grand.flow.yaml"}}],
    )  # fmt: skip
    write_flow(
        sub, inner, name="child", filename="child.flow.yaml",
        inputs={"d": {"path": "d.json"}}, files={"d.json": [1]},
    )  # fmt: skip
    (sub / "s.py").write_text("print(1)\n")
    ref = {"name": "ref", "flowRef": {"path": "sub/child.flow.yaml"}}
    top = section("top", "sequence", units=[ref], cache=True)
    plan = plan_of(tmp_path / "flow", top)
    runs.go(plan)
    assert runs.go(plan_of(tmp_path / "flow", top))[0].start_ids() == []
    everything = ["t/top/ref/inner/x", "t/top/ref/inner/g/g"]
    for edit in (
        lambda: (sub / "s.py").write_text("print(2)\n"),
        lambda: (sub / "d.json").write_text("[2]"),
        lambda: write_flow(sub, step("g", "grander"), name="grand", filename="grand.flow.yaml"),
    ):
        edit()
        driver, _, _ = runs.go(plan_of(tmp_path / "flow", top))
        assert driver.start_ids() == everything


def test_a_cached_section_misses_when_the_input_of_a_second_reference_changes(
    tmp_path: Path,
) -> None:
    """One flow referenced twice, the second given another file: an edit of that file counts."""
    runs = Runs(tmp_path)
    lib = tmp_path / "flow" / "lib"
    write_flow(
        lib, step("s", "cat", "{{ inputs.data }}"), name="child", filename="child.flow.yaml",
        inputs={"data": {"path": "data.txt"}}, files={"data.txt": "one"},
    )  # fmt: skip
    other = tmp_path / "outside.txt"  # outside the flow's folder: named by the flowRef alone
    other.write_text("two")
    given = {"data": {"path": str(other)}}
    refs = [
        {"name": "c1", "flowRef": {"path": "lib/child.flow.yaml"}},
        {"name": "c2", "flowRef": {"path": "lib/child.flow.yaml", "inputs": given}},
    ]
    top = section("top", "sequence", units=refs, cache=True)
    runs.go(plan_of(tmp_path / "flow", top))
    assert runs.go(plan_of(tmp_path / "flow", top))[0].start_ids() == []
    other.write_text("three")
    assert runs.go(plan_of(tmp_path / "flow", top))[0].start_ids() == ["t/top/c1/s", "t/top/c2/s"]


def test_a_cached_section_misses_when_a_file_named_through_flow_dir_changes(
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path)
    top = section("top", "sequence", units=[step("s", "sh", "{{ flow.dir }}/t.sh")], cache=True)
    (tmp_path / "flow").mkdir()
    script = tmp_path / "flow" / "t.sh"
    script.write_text("echo 1\n")
    runs.go(plan_of(tmp_path / "flow", top))
    assert runs.go(plan_of(tmp_path / "flow", top))[0].start_ids() == []
    script.write_text("echo 2\n")
    assert runs.go(plan_of(tmp_path / "flow", top))[0].start_ids() == ["t/top/s"]


def test_a_cached_section_misses_when_an_upstream_result_changes(tmp_path: Path) -> None:
    """A section's templates read its upstream's results, which no output digest holds."""
    runs = Runs(tmp_path)
    use = section(
        "use", "sequence", units=[step("u", "echo", "{{ upstream.a.result.n }}")], cache=True,
        dependsOn=["a"],
    )  # fmt: skip
    plan = plan_of(tmp_path / "flow", dag(step("a", "make", "a"), use))
    runs.go(plan, results={"t/d/a": {"n": 1}})
    assert runs.go(plan, results={"t/d/a": {"n": 1}})[0].start_ids() == ["t/d/a"]
    driver, _, _ = runs.go(plan, results={"t/d/a": {"n": 2}})
    assert driver.start_ids() == ["t/d/a", "t/d/use/u"]


def test_a_flow_moved_with_its_files_keeps_its_keys(tmp_path: Path) -> None:
    """Keys name the flow's folder and its file inputs by name, not by path (each MetaFlow in
    the cluster has its input files in a folder of its own); their content still counts."""
    runs = Runs(tmp_path)
    fan = section(
        "fan", "fanout", over={"input": "data"}, visit=step("v-{{ item }}", "make", "{{ item }}"),
        cache=True,
    )  # fmt: skip
    read = step("read", "cat", "{{ inputs.data }}", "{{ flow.dir }}/work.py")
    root = section("seq", "sequence", units=[fan, read])

    def placed(folder: str, data: list[int]) -> Plan:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "work.py").write_text("print(1)\n")
        return plan_of(
            tmp_path / folder, root, inputs={"data": {"path": "data.json"}},
            files={"data.json": data}, defaults={"cache": True},
        )  # fmt: skip

    runs.go(placed("here", [1, 2]))
    moved, seen, _ = runs.go(placed("there", [1, 2]))
    assert moved.start_ids() == [] and sorted(cached(seen)) == ["t/seq/fan", "t/seq/read"]
    changed, _, _ = runs.go(placed("elsewhere", [1, 3]))
    assert changed.start_ids() == ["t/seq/fan/1/v-3", "t/seq/read"], "the input's content changed"

"""The cache with real processes: a second run of a flow runs none of its cached steps (their
side effects do not happen again) and gives the same outputs; an edited flow runs again only
what the edit changed; runs writing one cache at once leave whole entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.local.runs import Env, journal, report, step, units_by_id

WRITE = """
import json, os, sys
from pathlib import Path
import steplib
steplib.log_run()
upstream = Path(os.environ["META_UPSTREAM"])
seen = {p.name: (p / "value.json").read_text() for p in sorted(upstream.iterdir())}
value = {"unit": os.environ["META_UNIT_ID"], "arg": sys.argv[1], "upstream": seen}
Path(os.environ["META_OUTPUT"], "value.json").write_text(json.dumps(value, sort_keys=True))
"""


def pipeline(env: Env, c_arg: str = "c", **spec: Any) -> Path:
    """a -> b, c (independent) and d reading b and c; every step caches (defaults)."""
    env.script("write.py", WRITE)
    units = [
        step("a", "write.py", "a"),
        step("b", "write.py", "b", dependsOn=["a"]),
        step("c", "write.py", c_arg),
        step("d", "write.py", "d", dependsOn=["b", "c"]),
    ]
    return env.flow(
        "cached",
        {"name": "main", "scope": "macro", "pattern": "dag", "units": units},
        defaults={"cache": True},
        **spec,
    )


def run(env: Env, flow: Path, workdir: str, cache: Path) -> dict[str, Any]:
    result = env.meta("run", str(flow), "--workdir", workdir, "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    return report(env.root / workdir)


def outputs(env: Env, workdir: str, unit: str) -> Any:
    folder = env.root / workdir / "store" / "cached" / "main" / unit / "@outputs"
    return json.loads((folder / "value.json").read_text())


def test_a_second_run_runs_no_cached_step_and_gives_the_same_outputs(env: Env) -> None:
    flow = pipeline(env)
    cache = env.root / "cache"
    run(env, flow, "one", cache)
    assert sorted(env.runs()) == [f"cached/main/{u}" for u in "abcd"]

    second = run(env, flow, "two", cache)
    assert len(env.runs()) == 4, "no step ran again: no side effect happened twice"
    units = units_by_id(second)
    source = str((env.root / "one").resolve())
    for unit in "abcd":
        entry = units[f"cached/main/{unit}"]
        assert (entry["state"], entry["cachedFrom"]) == ("cached", source), entry
        assert outputs(env, "two", unit) == outputs(env, "one", unit)
    summary = env.meta("run", str(flow), "--workdir", "three", "--cache-dir", str(cache))
    assert "(0 units run, 4 cached)" in summary.stdout
    status = env.meta("status", "two", "-o", "json")
    view = json.loads(status.stdout)
    assert view["units"]["cached"] == 4 and view["units"]["succeeded"] == 0
    assert {hit["from"] for hit in view["cachedUnits"]} == {source}


def test_an_edited_flow_runs_again_only_the_changed_step_and_what_reads_it(env: Env) -> None:
    cache = env.root / "cache"
    run(env, pipeline(env), "one", cache)
    before = len(env.runs())
    edited = pipeline(env, c_arg="c-edited")
    refused = env.meta("resume", "one")
    assert refused.returncode == 2
    assert "`meta run` the edited flow" in refused.stderr and "cache" in refused.stderr
    document = run(env, edited, "two", cache)
    assert sorted(env.runs()[before:]) == ["cached/main/c", "cached/main/d"]
    states = {uid: unit["state"] for uid, unit in units_by_id(document).items()}
    assert states == {
        "cached/main/a": "cached",
        "cached/main/b": "cached",
        "cached/main/c": "succeeded",
        "cached/main/d": "succeeded",
    }
    assert outputs(env, "two", "c")["arg"] == "c-edited"
    assert json.loads(outputs(env, "two", "d")["upstream"]["c"])["arg"] == "c-edited"


def test_a_resumed_run_keeps_its_cache_hits_as_finished(env: Env) -> None:
    cache = env.root / "cache"
    flow = pipeline(env)
    run(env, flow, "one", cache)
    run(env, flow, "two", cache)
    lines = [e for e in journal(env.root / "two") if e.get("event") == "finished"]
    assert {(e["state"], e["cached_from"]) for e in lines} == {
        ("cached", str((env.root / "one").resolve()))
    }
    assert all(e["outputs"]["files"] == 1 for e in lines), "a hit's outputs are on record"
    before = len(env.runs())
    again = env.meta("resume", "two")
    assert again.returncode == 0, again.stderr
    assert len(env.runs()) == before


def test_runs_writing_one_cache_at_once_leave_one_whole_entry_per_key(env: Env) -> None:
    cache = env.root / "cache"
    flow = pipeline(env)
    started = [
        env.start("run", str(flow), "--workdir", f"w{n}", "--cache-dir", str(cache), tag=f"m{n}")
        for n in range(4)
    ]
    for process in started:
        assert process.wait(timeout=120) == 0, (env.root / "m0.err").read_text()
    listed = json.loads(env.meta("cache", "ls", "--cache-dir", str(cache), "-o", "json").stdout)
    assert sorted(entry["unit"] for entry in listed) == [f"cached/main/{u}" for u in "abcd"]
    assert all(entry["files"] == 1 for entry in listed)
    assert not list((cache / "tmp").iterdir()), "no half-made entry is left"
    for n in range(4):
        for unit in "abcd":
            assert outputs(env, f"w{n}", unit) == outputs(env, "w0", unit)
    after = len(env.runs())
    run(env, flow, "later", cache)
    assert len(env.runs()) == after


def test_a_damaged_entry_is_a_miss_and_the_step_runs_again(env: Env) -> None:
    cache = env.root / "cache"
    flow = pipeline(env)
    run(env, flow, "one", cache)
    for entry in (cache / "entries").rglob("entry.json"):
        entry.write_text("{")
    before = len(env.runs())
    document = run(env, flow, "two", cache)
    assert len(env.runs()) == before + 4
    assert {unit["state"] for unit in document["units"]} == {"succeeded"}


def test_without_cache_the_steps_run_every_time(env: Env) -> None:
    env.script("write.py", WRITE)
    flow = env.flow(
        "plain",
        {
            "name": "main",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("a", "write.py", "a")],
        },
    )
    cache = env.root / "cache"
    for workdir in ("one", "two"):
        result = env.meta("run", str(flow), "--workdir", workdir, "--cache-dir", str(cache))
        assert result.returncode == 0, result.stderr
    assert env.runs() == ["plain/main/a", "plain/main/a"]
    assert not cache.exists(), "a flow that caches nothing writes no cache"


def test_a_flows_cache_dir_defaults_under_meta_cache_dir(env: Env, tmp_path: Path) -> None:
    flow = pipeline(env)
    base = tmp_path / "meta-cache"
    result = env.meta("run", str(flow), "--workdir", "one", environ={"META_CACHE_DIR": str(base)})
    assert result.returncode == 0, result.stderr
    assert len(list((base / "outputs" / "entries").rglob("entry.json"))) == 4
    run_file = json.loads((env.root / "one" / "run.json").read_text())
    assert run_file["cacheDir"] == str((base / "outputs").resolve())


def test_a_cache_hit_has_the_result_its_entry_kept_in_the_report(env: Env) -> None:
    env.script("gen.py", "import os; open(os.environ['META_RESULT'], 'w').write('{\"n\": 3}')")
    flow = env.flow(
        "res",
        {
            "name": "main",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("gen", "gen.py", cache=True)],
        },
    )
    cache = env.root / "cache"
    first = units_by_id(run(env, flow, "d1", cache))["res/main/gen"]
    second = units_by_id(run(env, flow, "d2", cache))["res/main/gen"]
    assert (first["state"], first["result"]) == ("succeeded", {"n": 3})
    assert (second["state"], second.get("result")) == ("cached", {"n": 3})


def test_a_step_that_names_the_flows_folder_is_a_hit_despite_the_runs_kept_there(
    env: Env,
) -> None:
    """`.` holds the flow, its data, the runs' workdirs and here the cache too: only the
    first two are its content."""
    (env.root / "data").mkdir()
    (env.root / "data" / "a.txt").write_text("v1")
    command = ["sh", "-c", 'cat "$1"/data/a.txt > "$META_OUTPUT/o.txt"', "sh", "."]
    listing = {"name": "list", "run": {"command": command}}
    flow = env.flow("dot", {"name": "main", "scope": "macro", "pattern": "dag", "units": [listing]},
                    defaults={"cache": True})  # fmt: skip
    cache = env.root / "cache"
    run(env, flow, "runs/one", cache)
    second = run(env, flow, "runs/two", cache)
    assert units_by_id(second)["dot/main/list"]["state"] == "cached"
    (env.root / "data" / "a.txt").write_text("v2")
    third = run(env, flow, "runs/three", cache)
    assert units_by_id(third)["dot/main/list"]["state"] == "succeeded", "its data changed"

"""Property tests of dag, fanout, fanin and cycle sections."""

from __future__ import annotations

import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.fakes import (
    FakeDriver,
    RecordingListener,
    max_overlap,
    plan_of,
    run,
    section,
    step,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**32)


def _yields(seed: int) -> Any:
    rng = random.Random(seed)
    return lambda task: rng.randint(0, 4)


def _run(
    root: dict[str, Any], seed: int, **options: Any
) -> tuple[FakeDriver, RecordingListener, Any]:
    driver = FakeDriver(yields=_yields(seed))
    listener = RecordingListener()
    with tempfile.TemporaryDirectory() as tmp:
        done = run(plan_of(Path(tmp), root, **options), driver, listener=listener)
    assert driver.problems == []
    assert all(live == 0 for live in driver.live.values())
    assert sorted(driver.opened) == sorted(driver.closed)
    return driver, listener, done


# dag


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[list[int]], list[int], list[str]]:
    """(dependencies of each unit, the order units are written in, each unit's kind)."""
    n = draw(st.integers(1, 12))
    deps = [
        draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 4))) if i else []
        for i in range(n)
    ]
    order = draw(st.permutations(range(n)))
    kinds = draw(st.lists(st.sampled_from(["step", "macro", "micro"]), min_size=n, max_size=n))
    return deps, order, kinds


@SETTINGS
@given(dags(), st.none() | st.integers(1, 5), SEEDS)
def test_dag(
    dag: tuple[list[list[int]], list[int], list[str]], limit: int | None, seed: int
) -> None:
    deps, order, kinds = dag
    n = len(deps)
    units = []
    for i in order:
        extra: dict[str, Any] = {"dependsOn": [f"u{d}" for d in deps[i]]} if deps[i] else {}
        if kinds[i] == "step":
            units.append(step(f"u{i}", **extra))
        else:
            units.append(
                section(f"u{i}", "sequence", kinds[i], units=[step("a"), step("b")], **extra)
            )
    options = {"maxActive": limit} if limit else {}
    driver, listener, done = _run(section("d", "dag", units=units, **options), seed)
    bound = limit or 4

    def steps(i: int) -> list[str]:
        return [f"t/d/u{i}"] if kinds[i] == "step" else [f"t/d/u{i}/a", f"t/d/u{i}/b"]

    def output(i: int) -> str:
        return steps(i)[-1]

    expected_ids = [uid for i in range(n) for uid in steps(i)]
    assert sorted(driver.start_ids()) == sorted(expected_ids)
    intervals = {i: driver.interval(steps(i)) for i in range(n)}
    for i in range(n):
        for d in deps[i]:
            assert intervals[i][0] > intervals[d][1]
    assert max_overlap(intervals.values()) <= bound
    record = listener.section("t/d")
    assert (record.max_active, record.units_run) == (bound, n)
    assert record.peak_active <= bound

    tasks = driver.tasks()
    for i in range(n):
        first = tasks[steps(i)[0]]
        assert list(first.upstream) == [(f"u{d}", output(d)) for d in deps[i]]
        if kinds[i] != "step":
            assert list(tasks[steps(i)[1]].upstream) == [("a", steps(i)[0])]
        assert first.pod == (f"t/d/u{i}" if kinds[i] == "micro" else None)
    assert sorted(driver.opened) == sorted(f"t/d/u{i}" for i in range(n) if kinds[i] == "micro")

    needed = {d for i in range(n) for d in deps[i]}
    sinks = [i for i in order if i not in needed]
    if len(sinks) == 1:
        assert (done.name, done.unit_id) == ("d", output(sinks[0]))
    else:
        assert done.unit_id == "t/d"
        assert driver.combined["t/d"] == [(f"u{i}", output(i)) for i in sinks]


# fanout


PLAIN = re.compile(r"(?=.*[A-Za-z_-])[A-Za-z0-9_-]{1,63}")
VALUES = st.integers(-1000, 1000) | st.text(max_size=4) | st.booleans() | st.none()
COLLECTIONS = st.lists(
    VALUES | st.dictionaries(st.text(max_size=3), VALUES, max_size=3), max_size=25
) | st.dictionaries(st.text(alphabet="ab/~.", max_size=4), VALUES, max_size=25)


@SETTINGS
@given(
    COLLECTIONS,
    st.booleans(),
    st.sampled_from(["", "/items"]),
    st.none() | st.integers(1, 5),
    st.sampled_from(["macro", "micro"]),
    SEEDS,
)
def test_fanout(
    collection: Any, gather: bool, pointer: str, limit: int | None, scope: str, seed: int
) -> None:
    over: dict[str, Any] = {"input": "data"}
    if pointer:
        over["path"] = pointer
    extra: dict[str, Any] = {"gather": step("g")} if gather else {}
    if limit:
        extra["maxActive"] = limit
    visit = step("v", "v", "{{ index }}", "{{ path }}", "{{ depth }}")
    fan = section("fan", "fanout", scope, over=over, visit=visit, **extra)
    document = {"items": collection} if pointer else collection
    driver, listener, done = _run(
        fan, seed, inputs={"data": {"path": "data.json"}}, files={"data.json": document}
    )
    bound = limit or 4
    items = (
        list(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
    )
    # An object's entry is named by its key in the id when the key is a plain name (no dot,
    # not a number), else by its position.
    visits = [
        f"t/fan/{index if isinstance(index, str) and PLAIN.fullmatch(index) else position}/v"
        for position, (index, _) in enumerate(items)
    ]

    ids = driver.start_ids()
    assert sorted(ids) == sorted(visits + (["t/fan/g"] if gather else []))
    tasks = driver.tasks()
    for uid, (index, item) in zip(visits, items, strict=True):
        where = str(index).replace("~", "~0").replace("/", "~1")
        assert tasks[uid].input == item
        assert tasks[uid].command == ("v", str(index), f"{pointer}/{where}", "0")
        assert tasks[uid].upstream == []
        assert tasks[uid].pod == ("t/fan" if scope == "micro" else None)
    assert driver.peak["t/fan"] <= bound
    record = listener.section("t/fan")
    assert record.units_run == len(items) + gather
    assert driver.peak["t/fan"] <= record.peak_active <= bound
    assert driver.opened == (["t/fan"] if scope == "micro" else [])

    # The gather (or the section's outputs) gets every visit, in item order.
    named = [(f"v.{i}", uid) for i, uid in enumerate(visits)] if len(visits) > 1 else []
    if len(visits) == 1:
        named = [("v", visits[0])]
    if gather:
        assert ids[-1] == "t/fan/g"
        assert all(driver.start_of("t/fan/g") > driver.end_of(uid) for uid in visits)
        assert list(tasks["t/fan/g"].upstream) == named
        assert (done.name, done.unit_id) == ("fan", "t/fan/g")
    elif len(visits) == 1:
        assert (done.name, done.unit_id) == ("fan", visits[0])
    else:
        assert done.unit_id == "t/fan"
        assert driver.combined["t/fan"] == named


# fanin


@SETTINGS
@given(st.integers(1, 8), st.none() | st.integers(1, 5), SEEDS)
def test_fanin(n: int, limit: int | None, seed: int) -> None:
    extra = {"maxActive": limit} if limit else {}
    units = [step(f"s{i}") for i in range(n)]
    root = section("fi", "fanin", units=units, gather=step("g", "g", "{{ flow.name }}"), **extra)
    driver, listener, done = _run(root, seed)
    bound = limit or 4
    parts = [f"t/fi/s{i}" for i in range(n)]
    ids = driver.start_ids()
    assert sorted(ids) == sorted([*parts, "t/fi/g"])
    assert ids[-1] == "t/fi/g"
    assert all(driver.start_of("t/fi/g") > driver.end_of(uid) for uid in parts)
    gather = driver.tasks()["t/fi/g"]
    assert list(gather.upstream) == [(f"s{i}", uid) for i, uid in enumerate(parts)]
    assert gather.command == ("g", "t")
    assert driver.peak["t/fi"] <= bound
    assert listener.section("t/fi").peak_active <= bound
    assert (done.name, done.unit_id) == ("fi", "t/fi/g")


# cycle


@SETTINGS
@given(
    st.integers(0, 40),
    st.integers(1, 7),
    st.integers(1, 4),
    st.integers(1, 3),
    st.data(),
    st.sampled_from(["jsonl", "json", "json-path"]),
    st.sampled_from(["macro", "micro"]),
    SEEDS,
)
def test_cycle(
    length: int,
    chunk: int,
    ring: int,
    rounds: int,
    data: st.DataObject,
    source: str,
    scope: str,
    seed: int,
) -> None:
    limit = data.draw(st.none() | st.integers(1, ring), label="maxActive")
    records = [{"n": i} for i in range(length)]
    over: dict[str, Any] = {"input": "stream", "chunk": chunk}
    if source == "jsonl":
        files: dict[str, Any] = {"stream.jsonl": records}
        inputs = {"stream": {"path": "stream.jsonl"}}
    elif source == "json":
        files, inputs = {"stream.json": records}, {"stream": {"path": "stream.json"}}
    else:
        files, inputs = {"stream.json": {"s": records}}, {"stream": {"path": "stream.json"}}
        over["path"] = "/s"
    members = [
        step(f"m{k}", f"m{k}", "{{ index }}", "{{ round }}", "{{ path }}") for k in range(ring)
    ]
    extra = {"maxActive": limit} if limit else {}
    root = section("cyc", "cycle", scope, over=over, ring=members, rounds=rounds, **extra)
    driver, listener, done = _run(root, seed, inputs=inputs, files=files)
    bound = limit or ring
    chunks = math.ceil(length / chunk)

    def uid(c: int, r: int, k: int) -> str:
        return f"t/cyc/chunk{c}.round{r}/m{k}"

    walk = [(r, k) for r in range(rounds) for k in range(ring)]
    expected = [uid(c, r, k) for c in range(chunks) for r, k in walk]
    assert sorted(driver.start_ids()) == sorted(expected)
    tasks = driver.tasks()
    for c in range(chunks):
        previous = None
        for r, k in walk:
            task = tasks[uid(c, r, k)]
            assert task.input == records[c * chunk : (c + 1) * chunk]
            assert task.command == (f"m{k}", str(c), str(r), over.get("path", ""))
            assert task.pod == ("t/cyc" if scope == "micro" else None)
            if previous is None:
                assert task.upstream == []
            else:
                assert list(task.upstream) == [(f"m{previous[1]}", uid(c, *previous))]
                assert driver.start_of(uid(c, r, k)) > driver.end_of(uid(c, *previous))
            previous = (r, k)
    for k in range(ring):
        member = [driver.interval([uid(c, r, k)]) for c in range(chunks) for r in range(rounds)]
        assert max_overlap(member) <= 1
    assert driver.peak["t/cyc"] <= bound
    record = listener.section("t/cyc")
    assert (record.max_active, record.units_run) == (bound, len(expected))
    assert record.peak_active <= bound

    last = [uid(c, rounds - 1, ring - 1) for c in range(chunks)]
    if chunks == 1:
        assert (done.name, done.unit_id) == ("cyc", last[0])
    else:
        assert done.unit_id == "t/cyc"
        assert driver.combined["t/cyc"] == [(f"m{ring - 1}.{c}", u) for c, u in enumerate(last)]

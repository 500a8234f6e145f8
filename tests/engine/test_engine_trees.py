"""Property tests of dfs and bfs walks, pre and post order, on random trees."""

from __future__ import annotations

import functools
import itertools
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.errors import InputFault
from tests.engine.fakes import FakeDriver, RecordingListener, plan_of, run, section, step

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WALK = "t/top/walk"
PREP = "t/top/prep"


@dataclass(repr=False)
class Tree:
    children: list[list[int]]
    """Node 0 is the root; each node's children in walk order."""
    fields: list[str]
    document: Any
    pointer: str
    """Where the tree sits in the document."""
    nodes: list[dict[str, Any]]
    paths: list[str]

    def __repr__(self) -> str:
        return f"Tree(children={self.children!r}, fields={self.fields!r}, pointer={self.pointer!r})"

    def depth(self, node: int) -> int:
        return self.keys[node].count(".")

    @functools.cached_property
    def keys(self) -> list[str]:
        keys = ["root"] + [""] * (len(self.children) - 1)
        for parent in self.preorder():
            for index, child in enumerate(self.children[parent]):
                keys[child] = f"{keys[parent]}.{index}"
        return keys

    def preorder(self) -> list[int]:
        order, stack = [], [0]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(reversed(self.children[node]))
        return order

    def postorder(self) -> list[int]:
        order: list[int] = []

        def walk(node: int) -> None:
            for child in self.children[node]:
                walk(child)
            order.append(node)

        walk(0)
        return order

    def levels(self) -> list[list[int]]:
        levels = [[0]]
        while True:
            below = [c for n in levels[-1] for c in self.children[n]]
            if not below:
                return levels
            levels.append(below)


@st.composite
def trees(draw: st.DrawFn, max_nodes: int = 200) -> Tree:
    n = draw(st.integers(1, max_nodes))
    spread = draw(st.integers(0, n))  # 0: one long chain; n: a bushy random tree
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        children[draw(st.integers(max(0, i - 1 - spread), i - 1))].append(i)
    fields = draw(st.sampled_from([["children"], ["kids", "more"]]))
    layout = draw(st.randoms(use_true_random=False))
    nodes: list[dict[str, Any]] = [{"id": i, "label": f"n{i}"} for i in range(n)]
    paths = [""] * n
    pointer = draw(st.sampled_from(["", "/data/tree"]))
    paths[0] = pointer
    for parent in range(n):  # parents come before their children
        kids = children[parent]
        split = layout.randint(0, len(kids)) if len(fields) == 2 else len(kids)
        for name, part in zip(fields, (kids[:split], kids[split:]), strict=False):
            if not part:
                empty = layout.choice(["omit", "empty", "null"])
                if empty != "omit":
                    nodes[parent][name] = [] if empty == "empty" else None
            elif len(part) == 1 and layout.random() < 0.3:
                nodes[parent][name] = nodes[part[0]]  # one child as an object, not an array
                paths[part[0]] = f"{paths[parent]}/{name}"
            else:
                nodes[parent][name] = [nodes[c] for c in part]
                for i, child in enumerate(part):
                    paths[child] = f"{paths[parent]}/{name}/{i}"
    document: Any = {"data": {"tree": nodes[0]}} if pointer else nodes[0]
    return Tree(children, fields, document, pointer, nodes, paths)


def _walk_flow(tree: Tree, pattern: str, order: str, scope: str, limit: int) -> dict[str, Any]:
    over: dict[str, Any] = {"input": "tree", "children": tree.fields}
    if tree.pointer:
        over["path"] = tree.pointer
    visit = step("visit", "visit", "{{ node.id }}", "{{ path }}", "{{ depth }}", "{{ index }}")
    walk = section("walk", pattern, scope, order=order, maxActive=limit, over=over, visit=visit)
    return section("top", "sequence", units=[step("prep"), walk])


def _run_tree(
    tree: Tree, pattern: str, order: str, scope: str, limit: int, seed: int
) -> tuple[FakeDriver, RecordingListener, Any]:
    rng = random.Random(seed)
    driver = FakeDriver(yields=lambda task: rng.randint(0, 4))
    listener = RecordingListener()
    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_of(
            Path(tmp),
            _walk_flow(tree, pattern, order, scope, limit),
            inputs={"tree": {"path": "tree.json"}},
            files={"tree.json": tree.document},
        )
        done = run(plan, driver, listener=listener)
    return driver, listener, done


def _check_walk(tree: Tree, pattern: str, order: str, scope: str, limit: int, seed: int) -> None:
    driver, listener, done = _run_tree(tree, pattern, order, scope, limit, seed)
    n = len(tree.children)
    keys = tree.keys
    uid = [f"{WALK}/{key}/visit" for key in keys]

    # Every node's visit runs exactly once, with its own id, data, path and variables.
    ids = driver.start_ids()
    assert ids[0] == PREP
    assert sorted(ids[1:]) == sorted(uid)
    tasks = driver.tasks()
    for node in range(n):
        task = tasks[uid[node]]
        assert task.command == (
            "visit",
            str(node),
            tree.paths[node],
            str(tree.depth(node)),
            str(keys[node].rsplit(".", 1)[-1] if node else 0),
        )
        assert task.input == {"id": node, "label": f"n{node}"}
        assert task.section == WALK
        assert task.pod == (WALK if scope == "micro" else None)

    # The order the pattern promises.
    node_of = {u: i for i, u in enumerate(uid)}
    if limit == 1:
        expected = {
            ("dfs", "pre"): tree.preorder(),
            ("dfs", "post"): tree.postorder(),
            ("bfs", "pre"): [x for level in tree.levels() for x in level],
            ("bfs", "post"): [x for level in reversed(tree.levels()) for x in level],
        }[(pattern, order)]
        assert [node_of[u] for u in ids[1:]] == expected
    for parent in range(n):
        for child in tree.children[parent]:
            if order == "pre":
                assert driver.start_of(uid[child]) > driver.end_of(uid[parent])
            else:
                assert driver.start_of(uid[parent]) > driver.end_of(uid[child])
    if pattern == "bfs":
        levels = tree.levels()
        for upper, lower in itertools.pairwise(levels):
            first, second = (upper, lower) if order == "pre" else (lower, upper)
            assert max(driver.end_of(uid[x]) for x in first) < min(
                driver.start_of(uid[x]) for x in second
            )

    # Never more than maxActive live, as the driver saw it and as the engine reports it.
    assert driver.peak[WALK] <= limit
    record = listener.section(WALK)
    assert (record.max_active, record.units_run) == (limit, n)
    assert driver.peak[WALK] <= record.peak_active <= limit

    # What flows in: the section's upstream at the walk's start, then parent down or children up.
    for node in range(n):
        upstream = list(tasks[uid[node]].upstream)
        kids = tree.children[node]
        if order == "pre":
            expected_up = [("prep", PREP)] if node == 0 else []
            for parent in range(n):
                if node in tree.children[parent]:
                    expected_up = [("visit", uid[parent])]
        elif not kids:
            expected_up = [("prep", PREP)]
        elif len(kids) == 1:
            expected_up = [("visit", uid[kids[0]])]
        else:
            expected_up = [(f"visit.{i}", uid[c]) for i, c in enumerate(kids)]
        assert upstream == expected_up, tree.keys[node]

    # The walk's output is the root's visit; a micro walk has one pod, opened and closed.
    assert (done.name, done.unit_id) == ("top", uid[0])
    assert driver.combined == {}
    assert driver.opened == driver.closed == ([WALK] if scope == "micro" else [])
    assert driver.problems == []
    assert all(live == 0 for live in driver.live.values())


LIMITS = st.integers(1, 4)
SCOPES = st.sampled_from(["macro", "micro"])
SEEDS = st.integers(0, 2**32)


@SETTINGS
@given(trees(), LIMITS, SCOPES, SEEDS)
def test_dfs_pre(tree: Tree, limit: int, scope: str, seed: int) -> None:
    _check_walk(tree, "dfs", "pre", scope, limit, seed)


@SETTINGS
@given(trees(), LIMITS, SCOPES, SEEDS)
def test_dfs_post(tree: Tree, limit: int, scope: str, seed: int) -> None:
    _check_walk(tree, "dfs", "post", scope, limit, seed)


@SETTINGS
@given(trees(), LIMITS, SCOPES, SEEDS)
def test_bfs_pre(tree: Tree, limit: int, scope: str, seed: int) -> None:
    _check_walk(tree, "bfs", "pre", scope, limit, seed)


@SETTINGS
@given(trees(), LIMITS, SCOPES, SEEDS)
def test_bfs_post(tree: Tree, limit: int, scope: str, seed: int) -> None:
    _check_walk(tree, "bfs", "post", scope, limit, seed)


def test_dfs_with_maxactive_above_one_runs_siblings_together(tmp_path: Path) -> None:
    """Not a vacuous bound: a bushy tree whose leaves sleep fills all maxActive slots."""
    tree = {"id": 0, "children": [{"id": i} for i in range(1, 9)]}
    visit = step("visit", "visit", "{{ node.id }}")
    walk = section(
        "walk",
        "dfs",
        order="pre",
        maxActive=3,
        over={"input": "tree", "children": "children"},
        visit=visit,
    )
    plan = plan_of(tmp_path, walk, inputs={"tree": {"value": tree}})
    sleeps = {f"t/walk/root.{i}/visit": 0.02 for i in range(8)}
    driver = FakeDriver(sleep=sleeps)
    run(plan, driver)
    assert driver.peak["t/walk"] == 3
    by_level: dict[int, int] = defaultdict(int)
    for uid in driver.start_ids():
        by_level[uid.count(".")] += 1
    assert dict(by_level) == {0: 1, 1: 8}


WORKFLOW = {
    "name": "ci",
    "jobs": {
        "build": {
            "name": "build",
            "steps": [{"name": "checkout"}, {"name": "make"}],
            "services": {"db": {"name": "db"}},
        },
        "a/b~c": {"name": "odd"},
        "7": {"name": "digits"},
        "test.unit": {"name": "dotted"},
    },
    "services": {"build": {"name": "same key, other map"}},
}


def _entries_walk(tmp_path: Path, pattern: str, order: str) -> FakeDriver:
    visit = step("v", "v", "{{ node.name }}", "{{ path }}", "{{ index }}", "{{ depth }}")
    over = {"input": "wf", "children": "steps", "entries": ["jobs", "services"]}
    walk = section("walk", pattern, order=order, over=over, visit=visit)
    driver = FakeDriver()
    run(plan_of(tmp_path, walk, inputs={"wf": {"value": WORKFLOW}}), driver)
    return driver


def test_a_dfs_over_nested_maps_names_each_entry_by_its_key(tmp_path: Path) -> None:
    driver = _entries_walk(tmp_path, "dfs", "post")

    commands = {uid: task.command for uid, task in driver.tasks().items()}
    assert commands == {
        "t/walk/root.build.0/v": ("v", "checkout", "/jobs/build/steps/0", "0", "2"),
        "t/walk/root.build.1/v": ("v", "make", "/jobs/build/steps/1", "1", "2"),
        "t/walk/root.build.db/v": ("v", "db", "/jobs/build/services/db", "db", "2"),
        "t/walk/root.build/v": ("v", "build", "/jobs/build", "build", "1"),
        # A key that is no plain name (a '/', digits, a dot) keeps the node's position in the id.
        "t/walk/root.1/v": ("v", "odd", "/jobs/a~1b~0c", "a/b~c", "1"),
        "t/walk/root.2/v": ("v", "digits", "/jobs/7", "7", "1"),
        "t/walk/root.3/v": ("v", "dotted", "/jobs/test.unit", "test.unit", "1"),
        # The same key in another map of the same node: the position, so ids stay unique.
        "t/walk/root.4/v": ("v", "same key, other map", "/services/build", "build", "1"),
        "t/walk/root/v": ("v", "ci", "", "0", "0"),
    }
    tasks = driver.tasks()
    # The maps are walked on their own: a node's META_INPUT holds neither them nor its children.
    assert tasks["t/walk/root.build/v"].input == {"name": "build"}
    assert tasks["t/walk/root/v"].input == {"name": "ci"}
    # Post-order: a node's upstream holds its children's and entries' visits, in walk order.
    assert [uid for _, uid in tasks["t/walk/root.build/v"].upstream] == [
        "t/walk/root.build.0/v",
        "t/walk/root.build.1/v",
        "t/walk/root.build.db/v",
    ]


def test_a_bfs_over_maps_walks_entries_level_by_level(tmp_path: Path) -> None:
    driver = _entries_walk(tmp_path, "bfs", "pre")

    depths = [uid.split("/")[2].count(".") for uid in driver.start_ids()]
    assert depths == sorted(depths)
    assert len(depths) == 9
    assert [uid for _, uid in driver.tasks()["t/walk/root.build.db/v"].upstream] == [
        "t/walk/root.build/v"
    ]


MISFITS = {
    "name": "a",
    "kids": [
        {"name": "b", "kids": "not nodes"},
        {"name": "c", "kids": [1, {"name": "x"}]},
        {"name": "d", "kids": {"name": "e", "kids": None}, "jobs": {"j": 1}},
    ],
    "jobs": {"k": {"name": "f"}},
}


def _misfits_walk(tmp_path: Path, tree: Any, misfits: str) -> FakeDriver:
    visit = step("v", "v", "{{ path }}")
    over = {"input": "t", "children": "kids", "entries": "jobs", "misfits": misfits}
    walk = section("walk", "dfs", order="pre", over=over, visit=visit)
    driver = FakeDriver()
    run(plan_of(tmp_path, walk, inputs={"t": {"value": tree}}), driver)
    return driver


def test_a_walk_keeping_misfits_walks_only_fields_holding_nodes(tmp_path: Path) -> None:
    inputs = {
        task.command[1]: task.input
        for task in _misfits_walk(tmp_path, MISFITS, "keep").tasks().values()
    }
    # What holds no nodes stays in its node, as the data its visit reads.
    assert inputs == {
        "": {"name": "a"},
        "/kids/0": {"name": "b", "kids": "not nodes"},
        "/kids/1": {"name": "c", "kids": [1, {"name": "x"}]},
        "/kids/2": {"name": "d", "jobs": {"j": 1}},
        "/kids/2/kids": {"name": "e", "kids": None},
        "/jobs/k": {"name": "f"},
    }


def test_a_walk_keeping_misfits_visits_a_root_that_is_not_an_object(tmp_path: Path) -> None:
    tasks = _misfits_walk(tmp_path, ["not", "a", "tree"], "keep").tasks()
    assert [(task.command, task.input) for task in tasks.values()] == [
        (("v", ""), ["not", "a", "tree"])
    ]


def test_a_walk_refuses_misfits_by_default_naming_one(tmp_path: Path) -> None:
    with pytest.raises(InputFault, match=r"/spec/inputs/t/value/kids/.*(not an object|children)"):
        _misfits_walk(tmp_path, MISFITS, "fault")

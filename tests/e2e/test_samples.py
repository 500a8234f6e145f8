"""The samples, end to end: each one run through the real `meta` CLI as real processes.

Every sample is run once per test session (into its own temporary workdir) and then checked
for its actual result values, for the report's invariants, and for the order its pattern
promises. `meta validate`, `meta plan` and `meta graph` are run on every sample too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
META = Path(sys.executable).with_name("meta")
TIMEOUT = 180

ALL = [
    "tree-sum",
    "org-bfs",
    "dag-fanout",
    "stream-cycle",
    "company-cases",
    "macro-of-micro",
    "failure-policy",
    "cached-steps",
    "release-gate",
]


def meta(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    assert META.exists(), f"the `meta` console script is not installed next to {sys.executable}"
    return subprocess.run(
        [str(META), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def flow_file(sample: str) -> Path:
    return SAMPLES / sample / f"{sample}.flow.yaml"


@dataclass
class Run:
    sample: str
    workdir: Path
    report_path: Path
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]

    @property
    def outputs(self) -> Path:
        return Path(self.report["outputs"])

    def units(self) -> dict[str, dict[str, Any]]:
        return {unit["id"]: unit for unit in self.report["units"]}

    def unit(self, unit_id: str) -> dict[str, Any]:
        units = self.units()
        assert unit_id in units, f"no unit {unit_id} in {sorted(units)}"
        return units[unit_id]

    def read(self, unit_id: str, name: str) -> Any:
        """A JSON file in one unit's outputs."""
        return json.loads(Path(self.unit(unit_id)["outputs"], name).read_text())

    def section(self, section_id: str) -> dict[str, Any]:
        found = [s for s in self.report["sections"] if s["id"] == section_id]
        assert len(found) == 1, f"section {section_id} in {self.report['sections']}"
        return found[0]


def execute(
    sample: str,
    base: Path,
    *extra: str | Path,
    flow: Path | None = None,
    cache: Path | None = None,
) -> Run:
    """Run a sample into `base`; the units that say `cache:` use `cache` (default: a cache of
    the run's own, so a sample's first run runs every step, whatever ran before)."""
    base.mkdir(parents=True, exist_ok=True)
    workdir = base / "work"
    report_path = base / "report.json"
    result = meta(
        "run",
        flow or flow_file(sample),
        "--workdir",
        workdir,
        "--report",
        report_path,
        "--cache-dir",
        cache or base / "cache",
        *extra,
        cwd=base,  # the samples must not depend on where `meta` is run from
    )
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Run(sample, workdir, report_path, result, report)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Each sample's run, made the first time a test asks for it."""

    class Lazy(dict[str, Run]):
        def __missing__(self, sample: str) -> Run:
            run = execute(sample, tmp_path_factory.mktemp(sample))
            assert run.result.returncode == 0, (
                f"meta run {sample}: exit {run.result.returncode}\n"
                f"{run.result.stdout}\n{run.result.stderr}"
            )
            self[sample] = run
            return run

    return Lazy()


def by_start(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(units, key=lambda unit: unit["startedAt"])


def node_key(unit_id: str, section_id: str) -> str:
    """The tree key of a dfs/bfs visit: `root`, `root.0`, `root.0.2`..."""
    rest = unit_id.removeprefix(section_id + "/")
    return rest.split("/", 1)[0]


# Invariants every sample's run must hold.


@pytest.mark.parametrize("sample", ALL)
def test_sample_runs_and_report_holds(runs: dict[str, Run], sample: str) -> None:
    run = runs[sample]
    report = run.report
    assert report["state"] == "succeeded"
    assert report["flow"] == sample
    assert "error" not in report
    assert f"outputs: {report['outputs']}" in run.result.stdout
    assert run.outputs.is_dir() and any(run.outputs.iterdir())
    assert report["startedAt"] <= report["finishedAt"]
    # --report writes the same document the workdir keeps.
    assert json.loads((run.workdir / "report.json").read_text()) == report
    assert (run.workdir / "run.json").is_file() and (run.workdir / "journal.jsonl").is_file()
    ids = [unit["id"] for unit in report["units"]]
    assert len(ids) == len(set(ids)) > 0
    for unit in report["units"]:
        if unit["state"] == "skipped":
            assert unit["reason"] == "condition" and unit["outputs"] is None, unit
            continue
        assert unit["state"] == "succeeded", unit
        assert unit["exitCode"] == 0 and unit["attempts"] == 1, unit
        assert unit["id"].startswith(f"{sample}/"), unit
        assert unit["startedAt"] <= unit["finishedAt"], unit
        # A unit that wrote nothing has no outputs folder, and an empty log is not kept.
        assert unit["outputs"] is None or any(Path(unit["outputs"]).iterdir()), unit
        logs = run.workdir / "logs" / unit["id"]
        assert all(log.stat().st_size > 0 for log in logs.glob("*")), unit
    assert report["sections"], "every sample has at least one section"
    for section in report["sections"]:
        assert 1 <= section["peakActive"] <= section["maxActive"], section
        assert section["unitsRun"] >= 1, section
    assert report["bytesPersisted"] > 0


# The samples' results, and the order their patterns promise.


def test_tree_sum(runs: dict[str, Run]) -> None:
    run = runs["tree-sum"]
    assert (run.outputs / "sum.txt").read_text().strip() == "42"
    walk = run.section("tree-sum/walk")
    assert (walk["pattern"], walk["scope"], walk["maxActive"]) == ("dfs", "micro", 1)
    assert walk["peakActive"] == 1 and walk["unitsRun"] == 9
    # maxActive 1: exact depth-first post-order, children before their parent.
    order = [node_key(u["id"], "tree-sum/walk") for u in by_start(run.report["units"])]
    assert order == [
        "root.0.0",
        "root.0.1.0",
        "root.0.1",
        "root.0",
        "root.1.0",
        "root.1.1",
        "root.1",
        "root.2",
        "root",
    ]
    sums = {
        node_key(u["id"], "tree-sum/walk"): int(Path(u["outputs"], "sum.txt").read_text())
        for u in run.report["units"]
    }
    assert sums["root.0.1"] == 15 and sums["root.0"] == 21 and sums["root.1"] == 16


def test_org_bfs(runs: dict[str, Run]) -> None:
    run = runs["org-bfs"]
    section = "org-bfs/allocate-budget"
    assert json.loads((run.outputs / "allocation.json").read_text()) == {
        "path": "acme",
        "budget": 1200,
        "depth": 0,
    }
    allocations = {
        node_key(u["id"], section): json.loads(Path(u["outputs"], "allocation.json").read_text())
        for u in run.report["units"]
    }
    assert {a["path"]: a["budget"] for a in allocations.values()} == {
        "acme": 1200,
        "acme/eng": 600,
        "acme/sales": 300,
        "acme/ops": 300,
        "acme/eng/platform": 300,
        "acme/eng/apps": 180,
        "acme/eng/data": 120,
        "acme/sales/emea": 150,
        "acme/sales/amer": 150,
        "acme/ops/it": 180,
        "acme/ops/facilities": 120,
        "acme/eng/platform/alice": 150,
        "acme/eng/platform/bob": 150,
    }
    # Each node built on its own parent's output (pre-order: the parent's data flows down).
    for key, allocation in allocations.items():
        assert allocation["depth"] == key.count(".")
        if key != "root":
            parent = allocations[key.rsplit(".", 1)[0]]
            assert allocation["path"].rsplit("/", 1)[0] == parent["path"]
    stats = run.section(section)
    assert (stats["pattern"], stats["scope"], stats["maxActive"]) == ("bfs", "macro", 3)
    assert stats["peakActive"] == 3 and stats["unitsRun"] == 13
    # Level by level: a level starts only when the one above has finished.
    levels: dict[int, list[dict[str, Any]]] = {}
    for unit in run.report["units"]:
        levels.setdefault(node_key(unit["id"], section).count("."), []).append(unit)
    for depth in range(max(levels)):
        assert max(u["finishedAt"] for u in levels[depth]) <= min(
            u["startedAt"] for u in levels[depth + 1]
        )
    # The three departments really ran at the same time.
    departments = levels[1]
    assert len(departments) == 3
    assert max(u["startedAt"] for u in departments) < min(u["finishedAt"] for u in departments)


def test_dag_fanout(runs: dict[str, Run]) -> None:
    run = runs["dag-fanout"]
    assert json.loads((run.outputs / "invoice.json").read_text()) == {
        "orders": 5,
        "subtotal": 2025,
        "tax": 405,
        "total": 2430,
    }
    assert run.read("dag-fanout/billing/price/subtotal", "subtotal.json")["lines"] == {
        "A1": 300,
        "B7": 1200,
        "C3": 200,
        "D9": 225,
        "E2": 100,
    }
    units = run.units()
    lines = [u for u in units.values() if u["name"].startswith("line-")]
    assert sorted(u["id"] for u in lines) == [
        f"dag-fanout/billing/price/{i}/line-{order}"
        for i, order in enumerate(["A1", "B7", "C3", "D9", "E2"])
    ]
    check, count = units["dag-fanout/billing/check"], units["dag-fanout/billing/count"]
    subtotal = units["dag-fanout/billing/price/subtotal"]
    invoice = units["dag-fanout/billing/invoice"]
    for line in lines:
        assert check["finishedAt"] <= line["startedAt"]
        assert line["finishedAt"] <= subtotal["startedAt"]
    assert max(count["finishedAt"], subtotal["finishedAt"]) <= invoice["startedAt"]
    dag, fanout = run.section("dag-fanout/billing"), run.section("dag-fanout/billing/price")
    assert (dag["pattern"], dag["maxActive"], dag["peakActive"], dag["unitsRun"]) == (
        "dag",
        2,
        2,
        4,
    )
    assert (fanout["pattern"], fanout["maxActive"], fanout["unitsRun"]) == ("fanout", 3, 6)
    assert fanout["peakActive"] == 3


def test_stream_cycle(runs: dict[str, Run]) -> None:
    run = runs["stream-cycle"]
    assert json.loads((run.outputs / "totals.json").read_text()) == {
        "chunks": 3,
        "rounds": [1],
        "raw": {"a": 141, "b": 171},
        "refined": {"a": 46, "b": 81},
        "dropped": [4, 8],
    }
    ring = "stream-cycle/pipeline/rounds"
    members, rounds, chunks = ["parse", "enrich", "tally"], 2, 3
    ring_units = [u for u in run.report["units"] if u["section"] == ring]
    assert len(ring_units) == len(members) * rounds * chunks == 18
    assert {u["id"] for u in ring_units} == {
        f"{ring}/chunk{c}.round{r}/{m}"
        for c in range(chunks)
        for r in range(rounds)
        for m in members
    }
    stats = run.section(ring)
    assert (stats["pattern"], stats["scope"], stats["maxActive"]) == ("cycle", "micro", 3)
    assert stats["unitsRun"] == 18 and stats["peakActive"] <= 3
    units = run.units()
    for c in range(chunks):
        # One chunk goes round the ring in order: each member after the one before it.
        trip = [units[f"{ring}/chunk{c}.round{r}/{m}"] for r in range(rounds) for m in members]
        for before, after in pairwise(trip):
            assert before["finishedAt"] <= after["startedAt"]
        first = run.read(f"{ring}/chunk{c}.round0/tally", "tally.json")
        last = run.read(f"{ring}/chunk{c}.round1/tally", "tally.json")
        assert (first["chunk"], first["round"], last["round"]) == (c, 0, 1)
        assert last["raw"] == first["totals"]  # the second round refines the first
    assert run.read(f"{ring}/chunk0.round1/tally", "tally.json")["totals"] == {
        "a": {"sum": 22, "count": 2},
        "b": {"sum": 20, "count": 1},
    }
    # The cycle's outputs: each chunk's last member in the last round, in chunk order.
    combined = Path(run.workdir, "store", ring, "@outputs")
    assert sorted(p.name for p in combined.iterdir()) == ["tally.0", "tally.1", "tally.2"]
    for i in range(chunks):
        tally = json.loads((combined / f"tally.{i}" / "tally.json").read_text())
        assert (tally["chunk"], tally["round"]) == (i, 1)


def test_company_cases(runs: dict[str, Run]) -> None:
    run = runs["company-cases"]
    assert json.loads((run.outputs / "summary.json").read_text()) == {
        "company": "acme",
        "departments": {"eng": 5600, "sales": 1280},
        "teams": 3,
        "people": 5,
        "hours": 72,
        "cost": 6880,
    }
    assert (run.outputs / "summary.txt").read_text().splitlines()[-1] == "acme: 72 h, cost 6880"
    section = "company-cases/roll-up"
    names = {node_key(u["id"], section): u["name"] for u in run.report["units"]}
    # Each level got its own operation, picked by `cases`.
    assert names == {
        "root": "summary",
        "root.0": "cost-eng",
        "root.1": "cost-sales",
        "root.0.0": "team-platform",
        "root.0.1": "team-apps",
        "root.1.0": "team-emea",
        "root.0.0.0": "hours-alice",
        "root.0.0.1": "hours-bob",
        "root.0.1.0": "hours-carol",
        "root.1.0.0": "hours-dan",
        "root.1.0.1": "hours-erin",
    }
    by_key = {node_key(u["id"], section): u for u in run.report["units"]}
    assert run.read(by_key["root.0.0"]["id"], "team.json") == {
        "team": "platform",
        "people": ["alice", "bob"],
        "hours": 36,
    }
    assert run.read(by_key["root.1"]["id"], "cost.json")["cost"] == 1280
    assert run.read(by_key["root.0.1.0"]["id"], "hours.json") == {"person": "carol", "hours": 20}
    # Post-order: every parent starts after all its children have finished.
    for key, unit in by_key.items():
        if key != "root":
            assert unit["finishedAt"] <= by_key[key.rsplit(".", 1)[0]]["startedAt"]
    stats = run.section(section)
    assert (stats["pattern"], stats["scope"], stats["maxActive"]) == ("dfs", "macro", 2)
    assert stats["unitsRun"] == 11


def test_company_cases_node_no_case_matches(tmp_path: Path) -> None:
    data = tmp_path / "odd.json"
    data.write_text(
        json.dumps(
            {
                "kind": "company",
                "name": "odd",
                "departments": [
                    {
                        "kind": "department",
                        "name": "d",
                        "rate": 1,
                        "teams": [{"kind": "contractor", "name": "zed"}],
                    }
                ],
            }
        )
    )
    run = execute("company-cases", tmp_path, "--set", f"company={data}")
    assert run.result.returncode == 2, run.result.stderr
    assert f"{data.name}: /departments/0/teams/0: no case of the visit matches" in run.result.stderr
    assert "Traceback" not in run.result.stderr
    assert run.report["state"] == "failed"
    assert not [u for u in run.report["units"] if u["state"] == "succeeded"]


def test_macro_of_micro(runs: dict[str, Run]) -> None:
    run = runs["macro-of-micro"]
    assert json.loads((run.outputs / "report.json").read_text()) == {
        "count": 8,
        "sum": 40,
        "min": 2,
        "max": 9,
        "mean": 5.0,
        "variance": 4.0,
        "sumSquares": 232,
        "median": 4.5,
    }
    top = "macro-of-micro/describe-numbers"
    units = run.units()
    # `load` handed the numbers to `describe` through the section's shared scratch only.
    assert sorted(p.name for p in Path(units[f"{top}/stats/load"]["outputs"]).iterdir()) == [
        "loaded.txt"
    ]
    for unit_id in (f"{top}/stats/load", f"{top}/stats/describe", f"{top}/squares/sum-squares"):
        assert units[unit_id]["scope"] == "micro"
    squares = [u for u in units.values() if u["name"].startswith("square-")]
    assert sorted(int(Path(u["outputs"], "square.txt").read_text()) for u in squares) == [
        4,
        16,
        16,
        16,
        25,
        25,
        49,
        81,
    ]
    assert all(u["scope"] == "micro" for u in squares)
    # The flowRef's flow ran as a unit of this one, over the data flowRef.inputs pointed at.
    median = units[f"{top}/middle/median"]
    assert median["scope"] == "macro"
    assert run.read(median["id"], "median.json") == {"median": 4.5}
    expected = {
        top: ("dag", "macro", 3),
        f"{top}/stats": ("sequence", "micro", 1),
        f"{top}/squares": ("fanout", "micro", 2),
    }
    for section_id, shape in expected.items():
        section = run.section(section_id)
        assert (section["pattern"], section["scope"], section["maxActive"]) == shape
    assert run.section(f"{top}/squares")["unitsRun"] == 9
    report = units[f"{top}/report"]
    for branch in ("stats/describe", "squares/sum-squares", "middle/median"):
        assert units[f"{top}/{branch}"]["finishedAt"] <= report["startedAt"]


def test_failure_policy(runs: dict[str, Run]) -> None:
    run = runs["failure-policy"]
    notify = "failure-policy/finally/notify"
    assert run.read(notify, "notification.json") == {"state": "succeeded", "failed": []}
    collected = run.read("failure-policy/checks/finally/collect", "collected.json")
    assert collected["states"] == {
        "probe": {"state": "succeeded", "cached": False, "result": None},
        "summary": {"state": "succeeded", "cached": False, "result": None},
        "inventory": {"state": "succeeded", "cached": False, "result": None},
    }
    assert collected["outputs"] == ["inventory", "probe", "summary"]
    assert run.read("failure-policy/checks/summary", "summary.json") == {
        "up": ["alpha", "beta", "gamma"]
    }


def test_failure_policy_with_a_site_down(tmp_path: Path) -> None:
    down = SAMPLES / "failure-policy" / "data" / "sites-down.json"
    run = execute("failure-policy", tmp_path, "--set", f"sites={down}")
    assert run.result.returncode == 1, run.result.stderr
    beta = "failure-policy/checks/probe/1/probe-beta"
    assert run.report["state"] == "failed"
    assert [f["unit"] for f in run.report["error"]["failures"]] == [beta]
    states = {uid: unit["state"] for uid, unit in run.units().items()}
    assert states[beta] == "failed"
    assert states["failure-policy/checks/summary"] == "skipped"
    assert states["failure-policy/checks/inventory"] == "succeeded"
    assert states["failure-policy/checks/finally/collect"] == "succeeded"
    assert run.read("failure-policy/finally/notify", "notification.json") == {
        "state": "failed",
        "failed": [beta],
    }
    history = run.unit(beta)["history"]
    assert [(h["state"], h["exitCode"]) for h in history] == [("failed", 1)]
    assert "beta does not answer" in history[0]["stderrTail"]


def test_cached_steps_a_second_run_runs_only_what_is_not_cached(runs: dict[str, Run]) -> None:
    first = runs["cached-steps"]
    top = "cached-steps/weather"
    published = json.loads((first.outputs / "published.json").read_text())["published"]
    assert published == {
        "stations": 4,
        "warmest": "airport",
        "coldest": "summit",
        "means": {"airport": 6.75, "harbour": 8.75, "north": -0.75, "summit": -6.5},
    }
    base = first.workdir.parent
    again = execute("cached-steps", base / "again", cache=base / "cache")
    assert again.result.returncode == 0, again.result.stderr
    assert "(1 units run, 2 cached)" in again.result.stdout
    states = {uid: (unit["state"], unit.get("cachedFrom")) for uid, unit in again.units().items()}
    source = str(first.workdir.resolve())
    assert states == {
        f"{top}/stations": ("cached", source),
        f"{top}/summary": ("cached", source),
        f"{top}/publish": ("succeeded", None),
    }, "the fan-out is one hit; `publish` says cache: false"
    assert (again.outputs / "published.json").read_text() == (
        first.outputs / "published.json"
    ).read_text()


def test_cached_steps_changed_data_runs_only_the_station_it_changed(
    runs: dict[str, Run],
) -> None:
    first = runs["cached-steps"]
    top = "cached-steps/weather"
    edited = SAMPLES / "cached-steps" / "data" / "readings-edited.json"
    base = first.workdir.parent
    run = execute(
        "cached-steps", base / "edited", "--set", f"readings={edited}", cache=base / "cache"
    )
    assert run.result.returncode == 0, run.result.stderr
    states = {uid.removeprefix(f"{top}/"): unit["state"] for uid, unit in run.units().items()}
    assert states == {
        "stations/0/station-north": "cached",
        "stations/1/station-harbour": "cached",
        "stations/2/station-airport": "succeeded",
        "stations/3/station-summit": "cached",
        "summary": "succeeded",
        "publish": "succeeded",
    }
    means = json.loads((run.outputs / "published.json").read_text())["published"]["means"]
    assert means["airport"] == 7.25


def test_flow_ref_target_runs_alone_on_its_inline_input(tmp_path: Path) -> None:
    run = execute("median", tmp_path, flow=SAMPLES / "macro-of-micro" / "median.flow.yaml")
    assert run.result.returncode == 0, run.result.stderr
    assert json.loads((run.outputs / "median.json").read_text()) == {"median": 2}


# The other commands, on every sample.

# Names the plan and the graph must mention: sections, steps, and what sets them apart.
MENTIONS = {
    "tree-sum": (["walk", "sum"], ["micro section walk [dfs]", "post-order"]),
    "org-bfs": (
        ["allocate-budget", "allocate"],
        ["macro section allocate-budget [bfs]", "pre-order", "at most 3 live"],
    ),
    "dag-fanout": (
        ["billing", "check", "count", "price", "subtotal", "invoice", "line-{{ item.id }}"],
        ["[dag]", "[fanout]", "after count, price: step invoice", "gather: step subtotal"],
    ),
    "stream-cycle": (
        ["pipeline", "rounds", "parse", "enrich", "tally", "merge"],
        ["micro section rounds [cycle]", "chunks of 4", "ring of 3, 2 round(s)"],
    ),
    "company-cases": (
        ["roll-up", "hours-{{ node.name }}", "team-{{ node.name }}", "summary"],
        [
            "when node.kind == 'person'",
            "when depth == 0",
            "children in departments, teams, members",
        ],
    ),
    "cached-steps": (
        ["weather", "stations", "station-{{ item.station }}", "summary", "publish"],
        ["steps cached", "cached (version 1) as a whole", "step publish (not cached)"],
    ),
    "macro-of-micro": (
        ["describe-numbers", "stats", "load", "describe", "squares", "sum-squares", "report"],
        ["micro section stats [sequence]", "flowRef middle -> flow median", "step median"],
    ),
    "failure-policy": (
        ["checks", "probe", "probe-{{ item.name }}", "summary", "inventory", "collect", "notify"],
        [
            "skips only what depends on it and goes on",
            "finally, whatever happened: step collect",
            "finally, whatever happened: step notify",
        ],
    ),
    "release-gate": (
        ["gate", "detect", "test", "test-{{ item }}", "docs", "release"],
        [
            "fans out one visit per item of the result of unit 'detect' at /packages",
            "only when {{ upstream.detect.result.docs }}: step docs",
        ],
    ),
}


@pytest.mark.parametrize("sample", ALL)
def test_sample_validates(sample: str) -> None:
    result = meta("validate", flow_file(sample))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"samples/{sample}/{sample}.flow.yaml: valid"
    assert result.stderr == ""


def test_all_samples_validate_at_once() -> None:
    files = sorted([*SAMPLES.glob("*/*.flow.yaml"), *SAMPLES.glob("*/*.flow.py")])
    assert len(files) >= len(ALL) + 1  # and median.flow.yaml, the flowRef's target
    result = meta("validate", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == len(files)


def test_dag_fanout_written_in_python_runs_as_its_yaml_does(tmp_path: Path) -> None:
    """samples/dag-fanout/dag-fanout.flow.py makes the same flow as the YAML: the same units
    run and the same invoice comes out."""
    python = SAMPLES / "dag-fanout" / "dag-fanout.flow.py"
    run = execute("dag-fanout", tmp_path, flow=python)
    assert run.result.returncode == 0, run.result.stderr
    assert run.report["state"] == "succeeded" and run.report["flow"] == "dag-fanout"
    assert json.loads((run.outputs / "invoice.json").read_text()) == {
        "orders": 5,
        "subtotal": 2025,
        "tax": 405,
        "total": 2430,
    }
    assert len(run.report["units"]) == 9
    planned = meta("plan", python)
    assert planned.returncode == 0, planned.stderr
    assert (
        planned.stdout.splitlines()[0] == "flow dag-fanout (samples/dag-fanout/dag-fanout.flow.py)"
    )


@pytest.mark.parametrize("sample", ALL)
def test_sample_plan(sample: str) -> None:
    result = meta("plan", flow_file(sample))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"flow {sample} (samples/{sample}/{sample}.flow.yaml)"
    names, phrases = MENTIONS[sample]
    for text in [*names, *phrases]:
        assert text in result.stdout, f"{text!r} not in the plan:\n{result.stdout}"


@pytest.mark.parametrize("sample", ALL)
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_sample_graph(sample: str, fmt: str) -> None:
    result = meta("graph", flow_file(sample), "--format", fmt)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    if fmt == "mermaid":
        assert text.startswith("flowchart")
        assert "subgraph" in text and "end" in text
    else:
        assert text.startswith("digraph")
        assert "subgraph cluster_" in text and text.rstrip().endswith("}")
    names, _ = MENTIONS[sample]
    for name in names:
        assert name in text, f"{name!r} not in the {fmt} graph:\n{text}"
    edges = "-->" if fmt == "mermaid" else "->"
    assert edges in text


def test_release_gate(runs: dict[str, Run]) -> None:
    run = runs["release-gate"]
    assert "release-gate: succeeded (4 units run, 1 skipped)" in run.result.stdout
    assert run.report["result"] == {"version": "1.2.0"}
    assert json.loads((run.outputs / "release.json").read_text()) == {
        "docs": "skipped",
        "fedBy": ["test"],
        "packagesTested": 2,
        "testLogs": ["api.log", "web.log"],
    }
    units = run.units()
    assert units["release-gate/gate/detect"]["result"] == {
        "packages": ["api", "web"],
        "docs": False,
        "lines": 55,
    }
    assert units["release-gate/gate/docs"]["state"] == "skipped"
    assert units["release-gate/gate/test/1/test-web"]["result"] == {
        "package": "web",
        "passed": 9,
        "failed": 0,
    }
    assert units["release-gate/gate/test/1/test-web"]["scope"] == "micro"


def test_run_refuses_a_workdir_that_holds_a_run(runs: dict[str, Run]) -> None:
    run = runs["tree-sum"]
    journal = (run.workdir / "journal.jsonl").read_bytes()
    report = (run.workdir / "report.json").read_bytes()
    again = meta("run", flow_file("tree-sum"), "--workdir", run.workdir)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "holds a run already" in again.stderr
    assert "Traceback" not in again.stderr
    # Nothing ran and nothing in the earlier run changed.
    assert (run.workdir / "journal.jsonl").read_bytes() == journal
    assert (run.workdir / "report.json").read_bytes() == report

"""Self-bootstrapping end to end: `generate` units through the real `meta` CLI.

samples/bootstrap/ runs a step that writes a JSON Schema and its data, a `generate` unit that
turns them into a flow and runs it inside the same run, and a step that reads that flow's
outputs. Bad cases each exit 2 with one `FILE: /pointer: reason` line. A generator that emits
an invalid flow (and one that recurses for ever) comes from a distribution made for the test on
PYTHONPATH, found through its `meta.plugins` entry point like any installed plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "bootstrap"
SCHEMAS = REPO / "samples" / "schemas"
META = Path(sys.executable).with_name("meta")
TIMEOUT = 120
GENERATE_ID = "bootstrap/pipeline/fleet"


def meta(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert META.exists(), f"the `meta` console script is not installed next to {sys.executable}"
    return subprocess.run(
        [str(META), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@dataclass
class Run:
    workdir: Path
    result: subprocess.CompletedProcess[str]

    @property
    def report(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.workdir / "report.json").read_text())
        return document

    def path(self, reported: str) -> Path:
        """A path from the report (relative to where `meta` ran, like the workdir given)."""
        return self.workdir.parent / reported

    def unit_ids(self) -> list[str]:
        return [unit["id"] for unit in self.report["units"]]

    def journal(self) -> list[dict[str, Any]]:
        lines = (self.workdir / "journal.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line]


def run_flow(flow: Path, base: Path, env: dict[str, str] | None = None) -> Run:
    """`meta run FLOW --workdir work` in `base`: a workdir relative to where `meta` runs, while
    the steps run in their flow's directory."""
    return Run(base / "work", meta("run", flow, "--workdir", "work", cwd=base, env=env))


def flow_file(directory: Path, name: str, root: dict[str, Any], **spec: Any) -> Path:
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {**spec, "root": root},
    }
    path = directory / f"{name}.flow.yaml"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def writer(name: str, file: str, text: str) -> dict[str, Any]:
    """A step writing `text` into META_OUTPUT/`file`."""
    code = (
        "import os, pathlib, sys; "
        "pathlib.Path(os.environ['META_OUTPUT'], sys.argv[1]).write_text(sys.argv[2])"
    )
    return {"name": name, "run": {"command": [sys.executable, "-S", "-c", code, file, text]}}


def gen(name: str, file: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "generate": {"description": {"fromUnit": "w", "file": file}}, **extra}


def fault_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if re.match(r"^\S.*: /\S*: ", line)]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_flow(SAMPLE / "bootstrap.flow.yaml", tmp_path_factory.mktemp("bootstrap"))
    assert run.result.returncode == 0, f"{run.result.stdout}\n{run.result.stderr}"
    return run


# The sample.


def test_the_sample_runs_the_flow_it_generates_and_reads_its_outputs(sample_run: Run) -> None:
    report = sample_run.report
    assert report["state"] == "succeeded"
    assert "bootstrap: succeeded (10 units run)" in sample_run.result.stdout
    result = json.loads((sample_run.path(report["outputs"]) / "result.json").read_text())
    assert result == {
        "depots": {"north": 2, "south": 3},
        "vehicles": 5,
        "invalid": ["/depots/1/vehicles/1"],
        "errors": ["/depots/1/vehicles/1/trips/1"],
    }
    # What discover wrote is where the generated flow ran from.
    discovered = Path(sample_run.workdir, "store", "bootstrap/pipeline/discover", "@outputs")
    assert sorted(p.name for p in discovered.iterdir()) == ["data.json", "schema.json"]


def test_the_generated_units_are_in_the_same_report_and_journal(sample_run: Run) -> None:
    ids = sample_run.unit_ids()
    walk = f"{GENERATE_ID}/walk"
    assert ids[0] == "bootstrap/pipeline/discover" and ids[-1] == "bootstrap/pipeline/report"
    generated = ids[1:-1]
    assert sorted(generated) == sorted(
        [
            f"{walk}/root/fleet",
            f"{walk}/root.0/depot",
            f"{walk}/root.1/depot",
            *(f"{walk}/root.0.{i}/vehicle" for i in range(2)),
            *(f"{walk}/root.1.{i}/vehicle" for i in range(3)),
        ]
    )
    # Post-order: the fleet (the root) is the last generated unit.
    assert generated[-1] == f"{walk}/root/fleet"
    units = {unit["id"]: unit for unit in sample_run.report["units"]}
    assert all(units[uid]["state"] == "succeeded" for uid in ids)
    assert units[f"{walk}/root/fleet"]["section"] == walk
    sections = {section["id"]: section for section in sample_run.report["sections"]}
    assert sections[walk]["pattern"] == "dfs" and sections[walk]["unitsRun"] == 8
    # The built-in validator checked every vehicle against the discovered schema.
    outputs = sample_run.path(units[f"{walk}/root.1.1/vehicle"]["outputs"])
    vehicle = json.loads((outputs / "report.json").read_text())
    assert (vehicle["type"], vehicle["valid"]) == ("vehicle", False)
    finished = {e["id"] for e in sample_run.journal() if e.get("event") == "finished"}
    assert finished == set(ids)
    kept = [log for uid in ids for log in (sample_run.workdir / "logs" / uid).glob("*")]
    assert kept, "the generated steps' logs are kept with the run's"
    assert all(log.stat().st_size > 0 for log in kept)


def test_resuming_the_finished_run_runs_nothing_again(tmp_path: Path) -> None:
    run = run_flow(SAMPLE / "bootstrap.flow.yaml", tmp_path)
    assert run.result.returncode == 0, run.result.stderr
    journal_before = run.journal()
    resumed = meta("resume", run.workdir, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "bootstrap: succeeded (0 units run, 10 finished before)" in resumed.stdout
    report = run.report
    assert len(report["units"]) == 10
    assert all(unit["resumed"] for unit in report["units"])
    started_again = [e for e in run.journal()[len(journal_before) :] if e["event"] == "started"]
    assert started_again == []


def test_meta_plan_and_graph_show_the_generate_unit(tmp_path: Path) -> None:
    flow = SAMPLE / "bootstrap.flow.yaml"
    plan = meta("plan", flow, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert re.search(
        r"generate fleet: .*schema\.json from unit 'discover'.*data\.json from unit 'discover'",
        plan.stdout,
    ), plan.stdout
    mermaid = meta("graph", flow, cwd=tmp_path)
    assert mermaid.returncode == 0, mermaid.stderr
    assert "generate fleet" in mermaid.stdout
    assert re.search(r"n\d+ --> n\d+", mermaid.stdout)
    dot = meta("graph", flow, "--format", "dot", cwd=tmp_path)
    assert dot.returncode == 0, dot.stderr
    assert re.search(r'label="generate fleet[^"]*", shape=hexagon', dot.stdout), dot.stdout


# A description given as an input.


def test_a_description_given_as_an_input(tmp_path: Path) -> None:
    for name in ("tasks.schema.json", "tasks.data.json"):
        shutil.copy(SCHEMAS / name, tmp_path / name)
    flow = flow_file(
        tmp_path,
        "from-input",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                {
                    "name": "tasks",
                    "generate": {"description": {"input": "schema"}, "data": {"input": "data"}},
                }
            ],
        },
        inputs={"schema": {"path": "tasks.schema.json"}, "data": {"path": "tasks.data.json"}},
    )
    run = run_flow(flow, tmp_path)
    assert run.result.returncode == 0, run.result.stderr
    tasks = json.loads((tmp_path / "tasks.data.json").read_text())
    ids = run.unit_ids()
    assert sorted(ids) == sorted(
        [f"from-input/top/tasks/each/{i}/task" for i in range(len(tasks))]
        + ["from-input/top/tasks/each/summary"]
    )
    summary = json.loads((run.path(run.report["outputs"]) / "report.json").read_text())
    assert summary["subtree"]["nodes"] == len(tasks) + 1  # the array, and each task


# Bad cases: exit 2, one clear line each.


@pytest.mark.parametrize(
    ("pattern", "units", "reason"),
    [
        (
            "dag",
            [writer("w", "s.json", "{}"), gen("g", "s.json")],
            "'w' does not feed 'g' (list it in dependsOn)",
        ),
        (
            "sequence",
            [writer("w", "s.json", "{}"), writer("x", "t.json", "{}"), gen("g", "s.json")],
            "'w' does not feed 'g' (it must come just before)",
        ),
    ],
)
def test_from_unit_naming_a_unit_that_does_not_feed_it(
    tmp_path: Path, pattern: str, units: list[dict[str, Any]], reason: str
) -> None:
    flow = flow_file(
        tmp_path, "static", {"name": "s", "scope": "macro", "pattern": pattern, "units": units}
    )
    run = run_flow(flow, tmp_path)
    assert run.result.returncode == 2
    pointer = f"/spec/root/units/{len(units) - 1}/generate/description/fromUnit"
    assert fault_lines(run.result) == [f"static.flow.yaml: {pointer}: {reason}"]
    assert not run.workdir.exists(), "a static fault runs nothing"
    checked = meta("validate", flow, cwd=tmp_path)
    assert checked.returncode == 2 and fault_lines(checked) == fault_lines(run.result)


def test_the_producer_left_no_such_file(tmp_path: Path) -> None:
    flow = flow_file(
        tmp_path,
        "nofile",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "dag",
            "units": [writer("w", "other.json", "{}"), gen("g", "schema.json", dependsOn=["w"])],
        },
    )
    run = run_flow(flow, tmp_path)
    assert run.result.returncode == 2, run.result.stderr
    assert fault_lines(run.result) == [
        "nofile.flow.yaml: /spec/root/units/1/generate/description/file: "
        "unit 'w' left no file 'schema.json' in its outputs"
    ]
    assert run.report["state"] == "failed"
    assert [u["id"] for u in run.report["units"]] == ["nofile/s/w"]


def test_a_description_every_generator_refuses(tmp_path: Path) -> None:
    schema = json.dumps(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"}
    )
    flow = flow_file(
        tmp_path,
        "refused",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "sequence",
            "units": [writer("w", "schema.json", schema), gen("g", "schema.json")],
        },
    )
    run = run_flow(flow, tmp_path)
    assert run.result.returncode == 2, run.result.stderr
    (line,) = fault_lines(run.result)
    assert re.fullmatch(
        r"\S*/store/refused/s/w/@outputs/schema\.json: /: "
        r"no generator understands this description \(generators: .*tree.*\)",
        line,
    ), line
    assert run.report["state"] == "failed"


PLUGIN = """
    import meta

    FLOW = {"apiVersion": "meta-orchestrator.io/v1alpha1", "kind": "MetaFlow"}
    WRITE = "import os; open(os.path.join(os.environ['META_OUTPUT'], 'nest.json'), 'w').write('1')"


    class Broken:
        name = "broken"

        def score(self, description):
            return 100.0 if description.path.name == "broken.json" else 0.0

        def generate(self, description):
            root = {"name": "x", "scope": "macro", "pattern": "sequence",
                    "units": [{"name": "s", "run": {"command": []}}]}
            return {**FLOW, "metadata": {"name": "broken"}, "spec": {"root": root}}


    class Nest:
        name = "nest"

        def score(self, description):
            return 100.0 if description.path.name == "nest.json" else 0.0

        def generate(self, description):
            nested = {"description": {"fromUnit": "w", "file": "nest.json"}}
            units = [{"name": "w", "run": {"command": ["python3", "-S", "-c", WRITE]}},
                     {"name": "g", "generate": nested}]
            root = {"name": "n", "scope": "macro", "pattern": "sequence", "units": units}
            return {**FLOW, "metadata": {"name": "nest"}, "spec": {"root": root}}


    @meta.hookimpl
    def meta_register_generators(registry):
        registry.register(Broken())
        registry.register(Nest())
"""


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `meta` that finds the test distribution's generators."""
    site = tmp_path / "site"
    info = site / "bootstrap_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "bootstrap_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bootstrap-test-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[meta.plugins]\nbootstrap-test = bootstrap_test_plugin\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "META_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    listed = meta("plugins", cwd=tmp_path, env=env)
    assert "broken\tbootstrap-test-plugin 0.1" in listed.stdout, listed
    return env


def test_a_generated_flow_that_is_invalid(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    flow = flow_file(
        tmp_path,
        "invalid",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "sequence",
            "units": [writer("w", "broken.json", "{}"), gen("g", "broken.json")],
        },
    )
    run = run_flow(flow, tmp_path, env=plugin_env)
    assert run.result.returncode == 2, run.result.stderr
    (line,) = fault_lines(run.result)
    assert re.fullmatch(
        r"\S*/store/invalid/s/w/@outputs/broken\.generated\.flow\.yaml: "
        r"/spec/root/units/0/run/command: generator 'broken' produced an invalid flow: .+",
        line,
    ), line
    assert [u["id"] for u in run.report["units"]] == ["invalid/s/w"]


def test_generated_flows_nesting_past_max_depth(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    flow = flow_file(
        tmp_path,
        "deep",
        {
            "name": "s",
            "scope": "macro",
            "pattern": "sequence",
            "units": [writer("w", "nest.json", "1"), gen("g", "nest.json")],
        },
        limits={"maxDepth": 2},
    )
    run = run_flow(flow, tmp_path, env=plugin_env)
    assert run.result.returncode == 2, run.result.stderr
    chain = " -> ".join(["deep/s/g", "deep/s/g/n/g", "deep/s/g/n/g/n/g"])
    (line,) = fault_lines(run.result)
    # The fault points at the generate unit that went too deep, in the flow generated for it.
    assert line == (
        "work/store/deep/s/g/n/w/@outputs/nest.generated.flow.yaml: /spec/root/units/1: "
        f"generated flows nest deeper than spec.limits.maxDepth (2): {chain}"
    ), line
    assert run.report["state"] == "failed"
    assert run.unit_ids() == ["deep/s/w", "deep/s/g/n/w", "deep/s/g/n/g/n/w"]

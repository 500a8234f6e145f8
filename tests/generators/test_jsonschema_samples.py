"""The samples in samples/schemas/, through the real `meta` CLI: generation is deterministic and
matches the golden files, the flows validate, and each one runs end to end.

Set META_UPDATE_GOLDEN=1 to rewrite the golden files from the current generators.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from meta.testing import check_generator
from tests.generators.helpers import GOLDEN, SAMPLES, run_meta

DATA = {
    "company": "company.data.json",
    "shop": "shop.data.json",
    "readings": "readings.data.jsonl",
    "tasks": "tasks.data.json",
}
GENERATOR = {"company": "tree", "shop": "dag", "readings": "stream", "tasks": "collection"}


def test_every_sample_schema_is_covered() -> None:
    assert sorted(p.name.removesuffix(".schema.json") for p in SAMPLES.glob("*.schema.json")) == (
        sorted(DATA)
    )
    assert sorted(p.name for p in GOLDEN.glob("*.flow.yaml")) == sorted(
        f"{name}.flow.yaml" for name in DATA
    )


@pytest.mark.parametrize("name", sorted(DATA))
def test_generation_is_byte_identical_and_matches_the_golden_file(name: str) -> None:
    args = ("generate", f"{name}.schema.json", "--data", DATA[name])
    first = run_meta(*args, cwd=SAMPLES)
    second = run_meta(*args, cwd=SAMPLES)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    golden = GOLDEN / f"{name}.flow.yaml"
    if os.environ.get("META_UPDATE_GOLDEN") == "1":
        golden.write_text(first.stdout, encoding="utf-8")
    assert first.stdout == golden.read_text(encoding="utf-8")
    assert f"meta-orchestrator.io/generator: {GENERATOR[name]}\n" in first.stdout


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """A copy of samples/schemas/ (the runs write nothing into the repository)."""
    copy = tmp_path / "schemas"
    shutil.copytree(SAMPLES, copy)
    return copy


def generate_into(samples: Path, name: str) -> Path:
    flow = samples / f"{name}.flow.yaml"
    result = run_meta(
        "generate", f"{name}.schema.json", "--data", DATA[name], "-o", flow.name, cwd=samples
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (f"{flow.name}: flow '{name}' by generator '{GENERATOR[name]}'\n")
    return flow


@pytest.mark.parametrize("name", sorted(DATA))
def test_generated_flows_validate(samples: Path, name: str) -> None:
    flow = generate_into(samples, name)
    first = flow.read_bytes()
    generate_into(samples, name)
    assert flow.read_bytes() == first
    checked = run_meta("validate", flow.name, cwd=samples)
    assert (checked.returncode, checked.stdout) == (0, f"{flow.name}: valid\n"), checked.stderr


def test_the_generators_pass_the_conformance_check() -> None:
    for name, generator in GENERATOR.items():
        generated = check_generator(generator, [SAMPLES / f"{name}.schema.json"])
        assert generated[0].generator == generator


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def step_command() -> None:
    """The generated flows call `meta step validate-node`, which the CLI must offer."""
    probe = run_meta("step", "validate-node", "--help", cwd=SAMPLES)
    if probe.returncode != 0:
        pytest.skip("`meta step validate-node` is not wired into the CLI yet")


def run_sample(samples: Path, name: str) -> dict[str, Any]:
    flow = generate_into(samples, name)
    result = run_meta("run", flow.name, "--workdir", "run", cwd=samples)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads((samples / "run" / "report.json").read_text())
    assert report["state"] == "succeeded"
    return report


def outputs(samples: Path, report: dict[str, Any], unit: str) -> Path:
    found = [u for u in report["units"] if u["id"] == unit]
    assert len(found) == 1, [u["id"] for u in report["units"]]
    return samples / str(found[0]["outputs"])


def read(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.e2e
@pytest.mark.usefixtures("step_command")
def test_company_runs_with_one_operation_per_level(samples: Path) -> None:
    report = run_sample(samples, "company")
    assert read(samples / report["outputs"] / "summary.json") == {
        "company": "acme",
        "departments": 2,
        "members": 5,
        "budget": 4600.0,
        "invalid": ["/departments/1/teams/0/members/1"],
    }
    by_name: dict[str, int] = {}
    for unit in report["units"]:
        by_name[unit["name"]] = by_name.get(unit["name"], 0) + 1
    assert by_name == {"company": 1, "department": 2, "team": 3, "person": 5}
    erin = read(outputs(samples, report, "company/walk/root.1.0.1/person") / "report.json")
    assert erin["errors"] == [
        {
            "pointer": "/departments/1/teams/0/members/1/email",
            "message": "'erin-at-acme' does not match '^[^@\\\\s]+@[^@\\\\s]+$'",
        },
        {
            "pointer": "/departments/1/teams/0/members/1/hours/1",
            "message": "-3 is less than the minimum of 0",
        },
    ]


@pytest.mark.e2e
@pytest.mark.usefixtures("step_command")
def test_shop_runs_as_a_dag(samples: Path) -> None:
    report = run_sample(samples, "shop")
    assert read(samples / report["outputs"] / "revenue" / "revenue.json") == {
        "revenue": {"c1": 6.0, "c2": 6.0},
        "total": 12.0,
    }
    # The validator stages' verdict is the flow's result, beside revenue's (none).
    assert report["result"] == {
        "revenue": None,
        "verdict": {"valid": False, "nodes": 6, "invalid": 1},
    }
    customers = read(outputs(samples, report, "shop/stages/customer") / "report.json")
    assert customers["subtree"] == {"nodes": 3, "invalid": 1}
    orders = read(outputs(samples, report, "shop/stages/order") / "orders.json")
    assert orders == {
        "orders": [0, 1, 2],
        "dangling": ["/orders/3"],
        "invalidUpstream": {"customer": 1, "product": 0},
    }


@pytest.mark.e2e
@pytest.mark.usefixtures("step_command")
def test_readings_run_as_a_cycle(samples: Path) -> None:
    report = run_sample(samples, "readings")
    tallies = [
        read(outputs(samples, report, f"readings/stream/chunk{i}.round0/tally") / "tally.json")
        for i in range(3)
    ]
    assert [(t["records"], t["skipped"]) for t in tallies] == [(3, []), (3, [3]), (2, [6])]
    totals: dict[str, float] = {}
    for tally in tallies:
        for sensor, values in tally["sensors"].items():
            totals[sensor] = totals.get(sensor, 0) + values["sum"]
    assert totals == {"temp-1": 87.0, "temp-2": 39.0}


@pytest.mark.e2e
@pytest.mark.usefixtures("step_command")
def test_tasks_fan_out_and_gather(samples: Path) -> None:
    report = run_sample(samples, "tasks")
    summary = read(samples / report["outputs"] / "report.json")
    assert (summary["type"], summary["valid"], summary["subtree"]) == (
        "Tasks",
        True,
        {"nodes": 5, "invalid": 1},
    )

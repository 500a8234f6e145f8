"""End to end through the CLI: generate the example's flow, run it, read the gathered report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "datapackage.json"
BIN = Path(sys.executable).parent


def meta(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "meta"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_meta_plugins_shows_the_distribution(tmp_path: Path) -> None:
    from importlib.metadata import version

    listed = meta("plugins", cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    assert (
        f"tableschema\tmeta-tableschema {version('meta-tableschema')}" in listed.stdout.splitlines()
    )


def test_generate_then_run_gathers_one_report(tmp_path: Path) -> None:
    flow = tmp_path / "flows" / "shop.flow.yaml"

    generated = meta("generate", EXAMPLE, "-o", flow, cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert "by generator 'tableschema'" in generated.stderr

    ran = meta(
        "run",
        flow,
        "--workdir",
        tmp_path / "run",
        "--report",
        tmp_path / "report.json",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr

    run_report = json.loads((tmp_path / "report.json").read_text())
    assert run_report["state"] == "succeeded"
    assert sorted(unit["name"] for unit in run_report["units"]) == [
        "check-customers",
        "check-orders",
        "report",
    ]
    outputs = Path(run_report["outputs"])
    outputs = outputs if outputs.is_absolute() else tmp_path / outputs
    summary = json.loads((outputs / "report.json").read_text())
    assert summary["package"] == "corner-shop"
    assert summary["valid"] is False
    assert summary["errorCount"] == 3
    customers, orders = summary["resources"]
    assert (customers["resource"], customers["rows"], customers["valid"]) == ("customers", 3, True)
    assert (orders["resource"], orders["rows"], orders["valid"]) == ("orders", 4, False)
    assert {(e["row"], e["field"]) for e in orders["errors"]} == {
        (4, "placed"),
        (4, "amount"),
        (4, "status"),
    }

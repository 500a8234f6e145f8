"""Issue 13, item 17: a cluster command with no cluster configured says so in one line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from meta.cli import main


def test_status_without_a_kubeconfig_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "none.kubeconfig"
    result = CliRunner().invoke(main, ["status", "x"], env={"KUBECONFIG": str(missing)})
    assert result.exit_code == 2, result.output
    # `x` is no run folder either, so the line says both.
    assert result.stderr == (
        "x: /: no run folder here, and no cluster to look it up in "
        f"({missing}: no cluster to use: Invalid kube-config file. No configuration found.)\n"
    )

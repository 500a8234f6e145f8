"""Regression: a fanout without gather has several results; its combined outputs must resolve
(links were relative to store/.partial, one level too deep) and be in item order (they were in
finish order, so names `sq.N` changed between runs and on resume)."""

import json
import subprocess
import sys
from pathlib import Path

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: fan}
spec:
  inputs:
    xs: {value: [0.6, 0.3, 0.0]}
  root:
    name: all
    scope: macro
    pattern: sequence
    units:
      - name: fan
        scope: macro
        pattern: fanout
        maxActive: 3
        over: {input: xs}
        visit:
          name: sq
          run: {command: [sh, -c, 'sleep "$1"; echo "$1" > "$META_OUTPUT/x"', sh, "{{ item }}"]}
      - name: after
        run: {command: [sh, -c, 'cat "$META_UPSTREAM"/fan/*/x > "$META_OUTPUT/all"']}
"""


def test_fanout_results_resolve_in_item_order(tmp_path: Path) -> None:
    flow = tmp_path / "fan.flow.yaml"
    flow.write_text(FLOW)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from meta.cli import main; main()",
            "run",
            str(flow),
            "--workdir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert Path(report["outputs"], "all").read_text().split() == ["0.6", "0.3", "0.0"]

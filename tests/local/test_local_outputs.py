"""A unit that wrote nothing has no outputs folder, and the report says null for it."""

from pathlib import Path

from meta.local.runner import start_run

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: q}
spec:
  root:
    name: d
    scope: macro
    pattern: dag
    units:
      - {name: a, run: {command: [sh, -c, 'echo 1 > $META_OUTPUT/a']}}
      - {name: b, run: {command: ["true"]}}
"""


def test_a_result_part_that_wrote_nothing_has_no_outputs(tmp_path: Path) -> None:
    flow = tmp_path / "q.flow.yaml"
    flow.write_text(FLOW)
    outcome = start_run(flow, tmp_path / "w", {})
    entries = {u["id"]: u for u in outcome.report["units"]}
    assert entries["q/d/b"]["outputs"] is None
    combined = Path(outcome.report["outputs"])
    assert (combined / "a" / "a").read_text() == "1\n"
    assert (combined / "b").is_dir() and not any((combined / "b").iterdir())


def test_run_outputs_is_null_or_exists(tmp_path: Path) -> None:
    flow = tmp_path / "n.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: n}\n"
        "spec:\n  root: {name: only, run: {command: ['true']}}\n"
    )
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "succeeded"
    assert outcome.report["outputs"] is None


def test_pod_gc_is_accepted_and_changes_nothing_locally(tmp_path: Path) -> None:
    flow = tmp_path / "g.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: g}\n"
        "spec:\n  podGC: {strategy: OnPodCompletion}\n"
        "  root: {name: only, run: {command: ['sh', '-c', 'echo hi > $META_OUTPUT/o']}}\n"
    )
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "succeeded"
    assert (Path(outcome.report["outputs"]) / "o").read_text() == "hi\n"

"""A flow that runs for a few seconds and shows what the page draws: a macro dag, a fan-out of
micro sections (one pod per region), a step that fails its first attempt and is retried, and,
when asked, a last step that fails with a message on its standard error. Used by the browser
tests and by benchmarks/ui_screenshot.py."""

from __future__ import annotations

import json
from pathlib import Path

STEP = r"""
import os, sys, time
what, seconds = sys.argv[1], float(sys.argv[2])
time.sleep(seconds)
out = os.environ["META_OUTPUT"]
with open(os.path.join(out, "done.txt"), "w") as f:
    f.write(what + "\n")
print(f"{what}: done after {seconds} s")
if what == "flaky" and os.environ["META_ATTEMPT"] == "1":
    print("flaky: the upstream service said 503, try again", file=sys.stderr)
    sys.exit(3)
if what == "publish-broken":
    print("publish: cannot reach the archive: connection refused", file=sys.stderr)
    sys.exit(4)
"""

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: orders-demo}}
spec:
  inputs:
    regions: {{path: regions.json}}
  defaults: {{retries: 0, timeoutSeconds: 60, retryBackoffSeconds: 0.2}}
  root:
    name: pipeline
    scope: macro
    pattern: dag
    maxActive: 3
    units:
      - name: fetch
        run: {{command: [{python}, step.py, fetch, "{pause}"]}}
      - name: flaky
        dependsOn: [fetch]
        retries: 2
        run: {{command: [{python}, step.py, flaky, "{pause}"]}}
      - name: regions
        dependsOn: [fetch]
        scope: macro
        pattern: fanout
        maxActive: 3
        over: {{input: regions}}
        visit:
          name: "region-{{{{ item }}}}"
          scope: micro
          pattern: sequence
          units:
            - name: parse
              run: {{command: [{python}, step.py, parse, "{pause}"]}}
            - name: score
              run: {{command: [{python}, step.py, score, "{pause}"]}}
        gather:
          name: merge
          run: {{command: [{python}, step.py, merge, "{pause}"]}}
      - name: publish
        dependsOn: [regions, flaky]
        run: {{command: [{python}, step.py, {last}, "{pause}"]}}
"""

REGIONS = ["eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east"]


def write_demo(folder: Path, *, pause: float = 0.5, fail: bool = False, python: str) -> Path:
    """Write the demo flow and its step into `folder`; the flow file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "step.py").write_text(STEP)
    (folder / "regions.json").write_text(json.dumps(REGIONS))
    last = "publish-broken" if fail else "publish"
    flow = folder / "demo.flow.yaml"
    flow.write_text(FLOW.format(python=json.dumps(python), pause=pause, last=last))
    return flow

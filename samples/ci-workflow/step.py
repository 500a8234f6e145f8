"""One step of a CI job: say what it would do, and note it in the step's outputs.

Argv: the step's index in its job, and the step (JSON). A real runner would execute its `run`
or the action its `uses` names; this sample only describes them.
"""

import json
import os
import sys
from pathlib import Path

index, step = int(sys.argv[1]), json.loads(sys.argv[2])
does = step.get("uses") or (step.get("run") or "?").strip().splitlines()[0]
name = step.get("name", does)
print(f"step {index}: {name} ({does})")
note = {"index": index, "name": name, "does": does}
Path(os.environ["META_OUTPUT"], "step.json").write_text(json.dumps(note) + "\n", encoding="utf-8")

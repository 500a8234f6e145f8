"""The state a chunk carries round the ring: state.json, read from the previous member."""

import json
import os
from pathlib import Path


def read_state(member: str) -> dict:
    return json.loads(Path(os.environ["META_UPSTREAM"], member, "state.json").read_text())


def write_state(state: dict) -> None:
    Path(os.environ["META_OUTPUT"], "state.json").write_text(json.dumps(state) + "\n")

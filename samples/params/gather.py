"""Gather the greetings, one line per greeting step, in the order of their names."""

import os
from pathlib import Path

upstream = Path(os.environ["META_UPSTREAM"])
lines = [(upstream / name / "greeting.txt").read_text() for name in sorted(os.listdir(upstream))]
Path(os.environ["META_OUTPUT"], "greetings.txt").write_text("".join(lines))

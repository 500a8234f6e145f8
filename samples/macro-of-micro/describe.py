"""Read the numbers `load` left in the section's shared scratch; write stats.json."""

import json
import os
from pathlib import Path

numbers = [int(x) for x in Path(os.environ["META_SCRATCH"], "numbers.txt").read_text().split()]
stats = {"count": len(numbers), "sum": sum(numbers), "min": min(numbers), "max": max(numbers)}
Path(os.environ["META_OUTPUT"], "stats.json").write_text(json.dumps(stats) + "\n")

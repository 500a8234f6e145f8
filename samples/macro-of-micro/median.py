"""The median of input `numbers`: a file path when given one, else the inline list."""

import json
import os
from pathlib import Path

numbers = json.loads(Path(os.environ["META_INPUT"]).read_text())["numbers"]
if isinstance(numbers, str):
    numbers = json.loads(Path(numbers).read_text())
ordered = sorted(numbers)
mid = len(ordered) // 2
median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
Path(os.environ["META_OUTPUT"], "median.json").write_text(json.dumps({"median": median}) + "\n")

"""Join the three branches: stats, the sum of squares and the median; write report.json."""

import json
import os
from pathlib import Path

upstream = Path(os.environ["META_UPSTREAM"])
stats = json.loads((upstream / "stats" / "stats.json").read_text())
sum_squares = int((upstream / "squares" / "sum_squares.txt").read_text())
median = json.loads((upstream / "middle" / "median.json").read_text())["median"]
n = stats["count"]
report = {
    **stats,
    "mean": stats["sum"] / n,
    "variance": sum_squares / n - (stats["sum"] / n) ** 2,
    "sumSquares": sum_squares,
    "median": median,
}
Path(os.environ["META_OUTPUT"], "report.json").write_text(json.dumps(report, sort_keys=True) + "\n")
print(json.dumps(report, sort_keys=True))

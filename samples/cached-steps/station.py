"""One station: the lowest, highest and mean of its readings (the costly step worth caching)."""

import json
import os
import time
from pathlib import Path

station = json.loads(Path(os.environ["META_INPUT"]).read_text())
time.sleep(0.2)  # stands for real work: a download, a model run
celsius = station["celsius"]
result = {
    "station": station["station"],
    "low": min(celsius),
    "high": max(celsius),
    "mean": round(sum(celsius) / len(celsius), 2),
}
Path(os.environ["META_OUTPUT"], "station.json").write_text(json.dumps(result) + "\n")

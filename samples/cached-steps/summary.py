"""Every station's figures in one summary (one META_UPSTREAM/stations subdir per station)."""

import json
import os
from pathlib import Path

stations = Path(os.environ["META_UPSTREAM"], "stations")
figures = [json.loads((d / "station.json").read_text()) for d in sorted(stations.iterdir())]
summary = {
    "stations": len(figures),
    "warmest": max(figures, key=lambda f: f["high"])["station"],
    "coldest": min(figures, key=lambda f: f["low"])["station"],
    "means": {f["station"]: f["mean"] for f in figures},
}
Path(os.environ["META_OUTPUT"], "summary.json").write_text(json.dumps(summary) + "\n")

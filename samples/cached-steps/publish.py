"""Publish the summary (here: a file saying what was published); never cached, so it runs on
every run, cached inputs or not."""

import json
import os
from pathlib import Path

summary = json.loads(Path(os.environ["META_UPSTREAM"], "summary", "summary.json").read_text())
published = {"published": summary, "by": os.environ["META_UNIT_ID"]}
Path(os.environ["META_OUTPUT"], "published.json").write_text(json.dumps(published) + "\n")

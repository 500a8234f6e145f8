"""Greet one name; prove the secret arrived (by its digest) and list the variables seen."""

import hashlib
import json
import os
import sys
from pathlib import Path

out = Path(os.environ["META_OUTPUT"])
words = " ".join([os.environ["GREETING"]] * int(os.environ["TIMES"]))
(out / "greeting.txt").write_text(f"{words} {sys.argv[1]}\n")
digest = hashlib.sha256(os.environ["API_TOKEN"].encode()).hexdigest()
(out / "token.sha256").write_text(digest[:12] + "\n")
seen = sorted(name for name in os.environ if not name.startswith("META_"))
(out / "variables.json").write_text(json.dumps(seen) + "\n")

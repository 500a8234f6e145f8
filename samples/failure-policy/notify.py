"""The flow's finally unit: the message a notifier would send, written to notification.json."""

import json
import os
from pathlib import Path

failures = json.loads(os.environ["FAILURES"])
message = {
    "state": os.environ["STATE"],
    "failed": [failure["unit"] for failure in failures],
}
Path(os.environ["META_OUTPUT"], "notification.json").write_text(json.dumps(message) + "\n")

"""Build the docs (only reached when the change touched docs/)."""

import os
from pathlib import Path

Path(os.environ["META_OUTPUT"], "docs.txt").write_text("docs built\n")

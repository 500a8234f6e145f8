"""Square one number (argv, rendered from `item`)."""

import os
import sys
from pathlib import Path

n = int(sys.argv[1])
Path(os.environ["META_OUTPUT"], "square.txt").write_text(f"{n * n}\n")

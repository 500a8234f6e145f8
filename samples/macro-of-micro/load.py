"""Put the numbers (argv: the input file, rendered from `inputs.numbers`) in the shared scratch."""

import json
import os
import sys
from pathlib import Path

numbers = json.loads(Path(sys.argv[1]).read_text())
scratch = Path(os.environ["META_SCRATCH"], "numbers.txt")
scratch.write_text("".join(f"{n}\n" for n in numbers))
Path(os.environ["META_OUTPUT"], "loaded.txt").write_text(f"{len(numbers)}\n")

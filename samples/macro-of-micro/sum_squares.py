"""Gather: add up the squares (one META_UPSTREAM subdir per visit, square-<i>)."""

import os
from pathlib import Path

squares = [int(p.read_text()) for p in Path(os.environ["META_UPSTREAM"]).glob("*/square.txt")]
Path(os.environ["META_OUTPUT"], "sum_squares.txt").write_text(f"{sum(squares)}\n")

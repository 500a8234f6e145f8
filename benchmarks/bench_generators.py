"""The cost of reading a JSON Schema and choosing a generator for it, over the corpus of
real-world schemas in tests/generators/corpus/ (and any schema files given on the command line).

For each schema, in a fresh process state (the load cache is cleared): read it, score it with
every built-in generator (the first score loads and analyses the schema; the others reuse it),
then generate the chosen generator's flow. Prints one row per schema (size, definitions, the
time to score with every generator, to generate, and the outcome), then the totals: flows per
schema, the median and worst time per schema. Target (issue 12): a 2 MB schema with ~400
definitions scored by every built-in generator in under 2 s. Not a test: it prints.

    python benchmarks/bench_generators.py [SCHEMA ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from meta_generators import schema_model

from meta.errors import UserError
from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import Plugins, load_plugins

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "generators" / "corpus"
TARGET_SECONDS = 2.0


def corpus_schemas() -> list[tuple[Path, Path | None]]:
    """(schema, the folder its $refs read files under: its folder in the corpus)."""
    manifest = CORPUS / "manifest.yaml"
    if not manifest.is_file():
        return []
    entries: list[dict[str, Any]] = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    return [
        (CORPUS / entry["schema"], CORPUS.joinpath(*Path(entry["schema"]).parts[:2]))
        for entry in entries
    ]


def measure(plugins: Plugins, path: Path, root: Path | None, out: Path) -> tuple[float, float, str]:
    """(seconds to score with every generator, seconds to generate, outcome)."""
    schema_model.forget()
    start = time.perf_counter()
    try:
        description = read_description(path, flow_dir=out, schema_root=root)
        for registered in plugins.catalogue:
            registered.generator.score(description)
    except UserError as exc:
        return time.perf_counter() - start, 0.0, f"refused: {exc.faults[0].reason[:60]}"
    scored = time.perf_counter() - start
    try:
        generated = generate(plugins, description, flow_path=out / "bench.flow.yaml")
    except UserError as exc:
        return scored, time.perf_counter() - start - scored, f"refused: {exc.faults[0].reason[:60]}"
    return scored, time.perf_counter() - start - scored, f"flow by {generated.generator}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("schemas", nargs="*", type=Path, help="more schema files")
    parser.add_argument("--repeat", type=int, default=3, help="best of N per schema")
    args = parser.parse_args()
    plugins = load_plugins(autoload=False)
    paths = [*corpus_schemas(), *((path, None) for path in args.schemas)]
    if not paths:
        print("no schemas: the corpus is not there and none were given", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'schema':52} {'KB':>6} {'defs':>5} {'score s':>8} {'gen s':>7}  outcome")
        for path, root in paths:
            runs = [measure(plugins, path, root, Path(tmp)) for _ in range(args.repeat)]
            scored = min(r[0] for r in runs)
            generated = min(r[1] for r in runs)
            outcome = runs[0][2]
            document = read_description(path).document
            defs = 0
            if isinstance(document, dict):
                defs = len(document.get("$defs", {}) or {}) + len(
                    document.get("definitions", {}) or {}
                )
            size = path.stat().st_size / 1024
            name = (
                str(path.relative_to(CORPUS / "schemas")) if CORPUS in path.parents else str(path)
            )
            print(f"{name[:52]:52} {size:6.0f} {defs:5d} {scored:8.3f} {generated:7.3f}  {outcome}")
            rows.append((name, size, scored, generated, outcome))
    flows = sum(1 for row in rows if row[4].startswith("flow"))
    totals = [row[2] + row[3] for row in rows]
    biggest = max(rows, key=lambda row: row[1])
    print()
    print(f"flows: {flows} of {len(rows)} schemas")
    print(
        f"per schema (score + generate): median {statistics.median(totals):.3f} s, "
        f"worst {max(totals):.3f} s"
    )
    verdict = "pass" if biggest[2] < TARGET_SECONDS else "not met"
    print(
        f"largest ({biggest[0]}, {biggest[1] / 1024:.1f} MB): scored by every generator in "
        f"{biggest[2]:.3f} s (target < {TARGET_SECONDS:.0f} s: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

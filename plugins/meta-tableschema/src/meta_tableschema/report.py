"""Gather the per-resource reports into one, with the standard library.

As the gather of the fan-out, ``meta-tableschema-report PACKAGE`` (or ``python3 -m
meta_tableschema.report PACKAGE``) reads every META_UPSTREAM/*/report.json written by
`meta_tableschema.check` and writes META_OUTPUT/report.json::

    {"package": NAME, "valid": BOOL, "rows": N, "errorCount": N, "resources": [REPORT, ...]}

with the resource reports in the order of the package's `resources`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meta_tableschema.check import environ_dir, write_json


def gather(upstream: Path, package: Path) -> dict[str, Any]:
    """The summary of the resource reports found under `upstream`."""
    reports = [
        json.loads((producer / "report.json").read_text(encoding="utf-8"))
        for producer in sorted(upstream.iterdir())
        if (producer / "report.json").is_file()
    ]
    reports.sort(key=lambda report: (report["index"], str(report["resource"])))
    try:
        name = json.loads(package.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return {
        "package": name,
        "valid": all(report["valid"] for report in reports),
        "rows": sum(report["rows"] for report in reports),
        "errorCount": sum(len(report["errors"]) for report in reports),
        "resources": reports,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`meta-tableschema-report PACKAGE`: write the one report of the package."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: meta-tableschema-report PACKAGE", file=sys.stderr)
        return 2
    try:
        upstream, output = environ_dir("META_UPSTREAM"), environ_dir("META_OUTPUT")
        summary = gather(upstream, Path(args[0]))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:
        print(f"meta-tableschema: cannot gather the reports: {exc}", file=sys.stderr)
        return 2
    write_json(output / "report.json", summary)
    state = "valid" if summary["valid"] else f"{summary['errorCount']} error(s)"
    print(f"{summary['package']}: {len(summary['resources'])} resource(s), {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

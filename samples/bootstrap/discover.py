"""Discover what the trip log holds, and describe it: a JSON Schema and the data it describes.

argv: TRIPS_CSV. Writes into META_OUTPUT:
  schema.json  a JSON Schema (draft 2020-12) of the hierarchy found: fleet -> depots -> vehicles,
               with an x-meta `run` per level the generators turn into a visit case, except for
               vehicles, which the built-in validator checks (trip distances may not be negative)
  data.json    the trips regrouped into that hierarchy
The `generate` unit that follows turns the two into a flow and runs it. That flow lives in this
step's outputs, so its commands are inline `python3 -c` programs: they need no script files.
"""

import csv
import json
import os
import sys
from pathlib import Path

DEPOT = """
import json, os, sys
from pathlib import Path
reports = [json.loads(p.read_text())
           for p in sorted(Path(os.environ["META_UPSTREAM"]).glob("*/report.json"))]
depot = {"depot": sys.argv[1], "city": sys.argv[2], "vehicles": len(reports),
         "invalid": sorted(r["path"] for r in reports if not r["valid"]),
         "errors": sorted(e["pointer"] for r in reports for e in r["errors"])}
Path(os.environ["META_OUTPUT"], "depot.json").write_text(json.dumps(depot, indent=1))
"""

FLEET = """
import json, os, sys
from pathlib import Path
depots = [json.loads(p.read_text())
          for p in sorted(Path(os.environ["META_UPSTREAM"]).glob("*/depot.json"))]
fleet = {"fleet": sys.argv[1], "depots": {d["depot"]: d["vehicles"] for d in depots},
         "vehicles": sum(d["vehicles"] for d in depots),
         "invalid": sorted(p for d in depots for p in d["invalid"]),
         "errors": sorted(p for d in depots for p in d["errors"])}
Path(os.environ["META_OUTPUT"], "fleet.json").write_text(json.dumps(fleet, indent=1))
"""


def main() -> None:
    with open(sys.argv[1], newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    depots: dict[str, dict] = {}
    for row in rows:
        depot = depots.setdefault(
            row["depot"],
            {"kind": "depot", "name": row["depot"], "city": row["city"], "vehicles": {}},
        )
        vehicle = depot["vehicles"].setdefault(
            row["vehicle"],
            {"kind": "vehicle", "name": row["vehicle"], "type": row["kind"], "trips": []},
        )
        vehicle["trips"].append(float(row["km"]))
    data = {
        "kind": "fleet",
        "name": "fleet",
        "depots": [{**d, "vehicles": list(d["vehicles"].values())} for d in depots.values()],
    }
    types = sorted({row["kind"] for row in rows})

    def node(kind: str, properties: dict, run: list[str] | None = None) -> dict:
        schema = {
            "type": "object",
            "required": ["kind", "name", *properties],
            "properties": {"kind": {"const": kind}, "name": {"type": "string"}, **properties},
        }
        if run is not None:
            schema["x-meta"] = {"run": {"command": ["python3", "-c", *run]}}
        return schema

    def children(kind: str) -> dict:
        return {"type": "array", "items": {"$ref": f"#/$defs/{kind}"}}

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Fleet",
        "description": f"Discovered in {Path(sys.argv[1]).name}: {len(rows)} trips.",
        "$ref": "#/$defs/fleet",
        "x-meta": {"name": "fleet", "maxActive": 2},
        "$defs": {
            "fleet": node("fleet", {"depots": children("depot")}, [FLEET, "{{ node.name }}"]),
            "depot": node(
                "depot",
                {"city": {"type": "string"}, "vehicles": children("vehicle")},
                [DEPOT, "{{ node.name }}", "{{ node.city }}"],
            ),
            "vehicle": node(
                "vehicle",
                {
                    "type": {"enum": types},
                    "trips": {"type": "array", "items": {"type": "number", "minimum": 0}},
                },
            ),
        },
    }
    out = Path(os.environ["META_OUTPUT"])
    (out / "schema.json").write_text(json.dumps(schema, indent=1) + "\n", encoding="utf-8")
    (out / "data.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


main()

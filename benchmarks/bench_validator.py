"""A generated validator on a real published schema: `meta run` with its `meta step` programs
forked from the warm starter, the same exec'd one by one (`META_WARM_START=0`), and a floor:
jsonschema checking the whole document in one new process.

The schema is CycloneDX 1.6 (tests/generators/corpus, with the files it refers to); the data a
bill of materials of `--components` components (each with a hash and a license: some two nodes
of the walk each), one of them invalid. `meta generate` writes the flow (the tree generator: a
post-order walk with a `meta step validate-node` unit per node), then each runner runs `--repeat`
times, interleaved: wall time and the CPU time of all its processes (user + system, from
RUSAGE_CHILDREN), medians; and what it found (meta: the flow's result; the floor: the errors
jsonschema gives). The floor is what `check-jsonschema` does: one process, the schema read and
its `$ref`s resolved once, the document checked whole. Not a test: it prints.

    python benchmarks/bench_validator.py [--components 150] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import machine

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "generators" / "corpus"
SCHEMA = CORPUS / "schemas" / "cyclonedx-bom-1.6" / "bom-1.6.SNAPSHOT.schema.json"
META = str(Path(sys.executable).with_name("meta"))

FLOOR = """\
import json, sys
from pathlib import Path
from jsonschema import validators
from referencing import Registry, Resource

schema_file, data_file = Path(sys.argv[1]), Path(sys.argv[2])
schema = json.loads(schema_file.read_text())

def retrieve(uri):
    beside = schema_file.parent / uri.rsplit("/", 1)[-1]
    return Resource.from_contents(json.loads(beside.read_text()))

checker = validators.validator_for(schema)(schema, registry=Registry(retrieve=retrieve))
errors = list(checker.iter_errors(json.loads(data_file.read_text())))
print(json.dumps({"valid": not errors, "errors": len(errors)}))
"""


def bill_of_materials(components: int) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM of `components` libraries; the middle one of an unknown type."""
    listed = [
        {
            "type": "library",
            "name": f"lib{n}",
            "version": "1.0.0",
            "bom-ref": f"pkg:pypi/lib{n}@1.0.0",
            "purl": f"pkg:pypi/lib{n}@1.0.0",
            "hashes": [{"alg": "SHA-256", "content": f"{n:064x}"}],
            "licenses": [{"license": {"id": "MIT"}}],
        }
        for n in range(components)
    ]
    listed[components // 2]["type"] = "no-such-type"
    return {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": listed}


def timed(run: Callable[[int], str], attempt: int) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child processes, what the run found)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    found = run(attempt)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, found


def meta_run(flow: Path, data: Path, workdir: Path, warm: bool) -> str:
    env = {**os.environ, "META_WARM_START": "1" if warm else "0"}
    done = subprocess.run(
        [META, "run", str(flow), "--set", f"data={data}", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result = [line for line in done.stdout.splitlines() if line.startswith("result: ")]
    if done.returncode != 0 or not result:
        raise SystemExit(f"meta run {flow} exited {done.returncode}: {done.stderr[-2000:]}")
    units = json.loads((workdir / "report.json").read_text())["units"]
    return f"{result[0].removeprefix('result: ')} ({len(units)} units)"


def floor(data: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", FLOOR, str(SCHEMA), str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine.describe()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-validator-") as tmp:
        folder = Path(tmp)
        data = folder / "bom.json"
        data.write_text(json.dumps(bill_of_materials(args.components)))
        flow = folder / "bom.flow.yaml"
        subprocess.run(
            [META, "generate", str(SCHEMA), "--schema-root", str(SCHEMA.parent), "-o", str(flow)],
            check=True,
            capture_output=True,
        )
        runners: dict[str, Callable[[int], str]] = {
            "floor": lambda _: floor(data),
            "warm": lambda n: meta_run(flow, data, folder / f"warm-{n}", warm=True),
            "exec": lambda n: meta_run(flow, data, folder / f"exec-{n}", warm=False),
        }
        walls: dict[str, list[float]] = {name: [] for name in runners}
        cpus: dict[str, list[float]] = {name: [] for name in runners}
        found: dict[str, str] = {}
        for attempt in range(args.repeat):
            for name, run in runners.items():
                wall, cpu, found[name] = timed(run, attempt)
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(
                f"run {attempt + 1}/{args.repeat}: "
                + ", ".join(f"{name} {walls[name][-1]:.2f} s" for name in runners),
                flush=True,
            )
    titles = {
        "floor": "jsonschema, the whole document in one process",
        "warm": "meta run, steps forked by the warm starter",
        "exec": "meta run, every step exec'd (META_WARM_START=0)",
    }
    print(
        f"\nCycloneDX 1.6 BOM of {args.components} components; medians of {args.repeat}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'runner':<50}{'wall s':>8}{'cpu s':>8}  found")
    for name, title in titles.items():
        print(
            f"{title:<50}{statistics.median(walls[name]):>8.2f}"
            f"{statistics.median(cpus[name]):>8.2f}  {found[name]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

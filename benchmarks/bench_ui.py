"""`meta ui` on a big run: page load and live-update cost in a real browser.

A synthetic run of `--units` steps (default 100,000: a fan-out of N/2 items, each a micro
section of two steps) is written as a session of `meta run` would write it: a real flow file,
its run.json and a journal of `started` and `finished` records, the session being this script's
own process (so the run shows as running). `meta ui` serves it (a real process) and Debian's
headless chromium, driven by Playwright, opens its page. Printed:

- server: the time `meta ui` takes to read the journal into its model (first `/api/run`), and
  the size of the summary the page loads (it holds counts per section, not the units);
- page load: from navigation until the graph is drawn and the list shows its rows, and the
  page's JavaScript heap then;
- expand: opening the fan-out's section (N units, virtualised) and jumping to its middle,
  until the rows there are drawn;
- updates: `--batches` batches of `--batch` units appended to the journal while the page is
  open; per batch, the time from the append until the page shows the new counts, and the
  browser's script time spent on it (Chrome's ScriptDuration).

Targets (issue 15: usable at 100,000 units): page load <= 3 s, each update <= 1 s from append to
screen. Figures from a shared machine are noisy; each line says what it measured.

    python benchmarks/bench_ui.py [--units 100000] [--batches 5] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

META = Path(sys.executable).with_name("meta")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_LOAD_S = 3.0
TARGET_UPDATE_S = 1.0

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: big}
spec:
  inputs:
    items: {path: items.json}
  root:
    name: all
    scope: macro
    pattern: dag
    maxActive: 2
    units:
      - name: items
        scope: macro
        pattern: fanout
        maxActive: 16
        over: {input: items}
        visit:
          name: "item-{{ index }}"
          scope: micro
          pattern: sequence
          units:
            - {name: parse, run: {command: ["true"]}}
            - {name: score, run: {command: ["true"]}}
"""


def unit_records(first: int, count: int, at: float) -> Iterator[dict[str, Any]]:
    """Journal records of items first..first+count-1: each item's two steps, ended."""
    for index in range(first, first + count):
        for name in ("parse", "score"):
            uid = f"big/all/items/{index}/item-{index}/{name}"
            yield {"event": "started", "id": uid, "attempt": 1, "at": at}
            yield {
                "event": "finished",
                "id": uid,
                "name": name,
                "section": f"big/all/items/{index}/item-{index}",
                "scope": "micro",
                "state": "failed" if index % 5000 == 4999 and name == "score" else "succeeded",
                "attempts": 1,
                "started_at": at,
                "finished_at": at + 0.01,
                "exit_code": 0,
                "reason": "",
                "stderr_tail": "",
                "resumed": False,
            }


def append(journal: Path, records: Iterator[dict[str, Any]]) -> None:
    with journal.open("a") as out:
        out.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


def write_run(base: Path, items: int, done: int) -> Path:
    flow_dir = base / "flow"
    flow_dir.mkdir()
    (flow_dir / "items.json").write_text(json.dumps(list(range(items))))
    (flow_dir / "big.flow.yaml").write_text(FLOW)
    workdir = base / "runs" / "big"
    workdir.mkdir(parents=True)
    now = time.time()
    info = {"name": "big", "flow": str(flow_dir / "big.flow.yaml"), "startedAt": now}
    (workdir / "run.json").write_text(json.dumps(info))
    journal = workdir / "journal.jsonl"
    append(journal, iter([{"event": "session", "at": now, "pid": os.getpid()}]))
    append(journal, unit_records(0, done, now))
    return workdir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000, help="units per batch")
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        print("Debian's chromium is needed: apt-get install chromium")
        return 0
    from playwright.sync_api import sync_playwright

    items = args.units // 2
    appended_items = args.batches * args.batch // 2
    base = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    server = None
    try:
        workdir = write_run(base, items, items - appended_items)
        journal = workdir / "journal.jsonl"
        print(
            f"synthetic run: {args.units:,} units ({items:,} items x 2 steps), journal "
            f"{journal.stat().st_size / 1e6:.1f} MB, {args.batches} batches of {args.batch} "
            "units to come"
        )
        server = subprocess.Popen(
            [str(META), "ui", "--port", "0", "runs"],
            cwd=base,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        url = server.stdout.readline().split()[2]
        started = time.perf_counter()
        with urllib.request.urlopen(url + "api/run?" + urlencode({"run": "runs/big"})) as got:
            summary = got.read()
        print(
            f"server: journal read into the model in {time.perf_counter() - started:.2f} s; "
            f"summary {len(summary) / 1e3:.1f} kB"
        )
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(base / "profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 820},
            )
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            started = time.perf_counter()
            page.goto(f"{url}#/run/{quote('runs/big', safe='')}")
            page.wait_for_selector(".row.group")
            page.wait_for_function("window.metaUi && window.metaUi.cy && window.metaUi.summary")
            load = time.perf_counter() - started
            heap = page.evaluate("performance.memory.usedJSHeapSize") / 1e6
            verdict = "pass" if load <= TARGET_LOAD_S else "FAIL"
            print(
                f"page load: {load:.2f} s, JS heap {heap:.1f} MB   {verdict} (<= {TARGET_LOAD_S} s)"
            )

            started = time.perf_counter()
            for group in ("big/all", "big/all/items"):
                page.click(f'.row.group[data-group="{group}"]')
            page.click('.row.group[data-group="big/all/items/item-{{ index }}"]')
            page.evaluate(f"document.getElementById('list').scrollTop = 26 * {items}")
            page.evaluate("document.getElementById('list').dispatchEvent(new Event('scroll'))")
            page.wait_for_selector(f'.row.unit[data-unit*="/{items // 2 - 5}/"]')
            rows = page.locator(".row").count()
            print(
                f"expand: the section of {2 * items - 2 * appended_items:,} units opened, "
                "its middle drawn in "
                f"{time.perf_counter() - started:.2f} s ({rows} rows in the DOM)"
            )
            page.wait_for_selector("#live.on")
            shown = items * 2 - appended_items * 2
            timings: list[tuple[float, float]] = []
            for batch in range(args.batches):
                first = items - appended_items + batch * args.batch // 2
                script_before = _script_seconds(cdp)
                started = time.perf_counter()
                append(journal, unit_records(first, args.batch // 2, time.time()))
                shown += args.batch
                page.wait_for_function(
                    "n => { const s = window.metaUi.summary.units;"
                    " return s.succeeded + s.failed === n; }",
                    arg=shown,
                )
                timings.append(
                    (time.perf_counter() - started, _script_seconds(cdp) - script_before)
                )
            worst = max(t for t, _ in timings)
            verdict = "pass" if worst <= TARGET_UPDATE_S else "FAIL"
            for number, (wall, script) in enumerate(timings, start=1):
                print(
                    f"update {number}: {args.batch} units appended -> on the page in "
                    f"{wall * 1000:.0f} ms (browser script time {script * 1000:.0f} ms)"
                )
            print(f"updates: worst {worst * 1000:.0f} ms   {verdict} (<= {TARGET_UPDATE_S} s)")
            context.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _script_seconds(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "ScriptDuration"))


if __name__ == "__main__":
    sys.exit(main())

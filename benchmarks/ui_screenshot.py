"""Take docs/ui.png: `meta ui` on a real run of the demo flow (tests/ui/demo.py), caught
half-way, with the retried unit's details open. Not a benchmark: it lives here beside
bench_ui.py, which drives the same browser.

    python benchmarks/ui_screenshot.py [--out docs/ui.png]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_ui import CHROMIUM, CHROMIUM_ARGS, META  # noqa: E402
from tests.ui.demo import write_demo  # noqa: E402

SIZE = {"width": 1440, "height": 860}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="ui-shot-"))
    processes: list[subprocess.Popen[str]] = []
    try:
        flow = write_demo(base / "demo", pause=1.5, python=sys.executable)
        run = subprocess.Popen(
            [str(META), "run", str(flow), "--workdir", "runs/orders-demo"],
            cwd=base,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        processes.append(run)
        while not (base / "runs/orders-demo/run.json").exists():
            time.sleep(0.05)
        server = subprocess.Popen(
            [str(META), "ui", "--port", "0", "runs"], cwd=base, stdout=subprocess.PIPE, text=True
        )
        processes.append(server)
        assert server.stdout is not None
        url = server.stdout.readline().split()[2]
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(base / "profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport=SIZE,
                device_scale_factor=1,
            )
            page = context.new_page()
            page.goto(f"{url}#/run/{quote('runs/orders-demo', safe='')}")
            # Half-way: the retried unit done, regions under way.
            page.wait_for_function(
                "() => { const s = window.metaUi && window.metaUi.summary;"
                " return s && s.units.succeeded >= 9 && s.units.running >= 2; }",
                timeout=120_000,
            )
            page.click('.row.unit[data-unit$="/flaky"]')
            page.wait_for_selector('#detail[data-unit$="/flaky"] .attempt[data-attempt="1"]')
            page.wait_for_timeout(300)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            context.close()
        print(f"wrote {args.out}")
    finally:
        for process in processes:
            if process.poll() is None:
                # meta run stops its steps on SIGINT, as on Ctrl-C.
                process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

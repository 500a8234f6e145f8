"""The page in a real browser, on flows that run while it is open."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.bench_ui import write_run
from tests.ui.conftest import META
from tests.ui.demo import write_demo

WAIT_MS = 30_000


def test_units_appear_and_change_state_live_and_a_retried_unit_shows_its_attempts(
    tmp_path: Path, serve: Callable[..., tuple[str, str]], run_flow: Callable[..., Any], page: Any
) -> None:
    flow = write_demo(tmp_path / "demo", pause=0.6, python=sys.executable)
    (tmp_path / "runs").mkdir()
    url, _ = serve("runs")
    running = run_flow(flow, "demo")
    deadline = time.monotonic() + 30
    while not (tmp_path / "runs/demo/run.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    page.goto(url)
    page.wait_for_selector('tr[data-run="runs/demo"]', timeout=WAIT_MS)
    page.goto(f"{url}#/run/{quote('runs/demo', safe='')}")

    first = page.wait_for_selector('.row.unit[data-state="running"]', timeout=WAIT_MS)
    unit = first.get_attribute("data-unit")
    assert unit is not None
    # The same row turns succeeded with no reload: pushed by the server.
    done = f'.row.unit[data-unit="{unit}"][data-state="succeeded"]'
    page.wait_for_selector(done, timeout=WAIT_MS)
    # Reaped first: until then the ended `meta run` is a zombie, whose pid still looks alive.
    assert running.wait(timeout=30) == 0
    page.wait_for_selector("#run-state.succeeded", timeout=WAIT_MS)
    regions = page.locator('.row.unit[data-unit*="/regions/"]')
    assert regions.count() == 12 + 1  # six regions' parse and score, and the merge

    page.click('.row.unit[data-unit$="/flaky"]')
    page.wait_for_selector('#detail[data-unit$="/flaky"] .attempt[data-attempt="2"]')
    first_attempt = page.locator('#detail .attempt[data-attempt="1"] .log.stderr')
    assert "503" in first_attempt.inner_text()
    assert page.locator("#detail .attempt").count() == 2
    assert "done.txt" in page.locator("#detail ul.outputs").inner_text()


def test_the_runs_list_shows_a_run_that_starts_while_it_is_open(
    tmp_path: Path, serve: Callable[..., tuple[str, str]], run_flow: Callable[..., Any], page: Any
) -> None:
    flow = write_demo(tmp_path / "demo", pause=0.6, python=sys.executable)
    (tmp_path / "runs").mkdir()
    url, _ = serve("runs")
    page.goto(url)
    page.wait_for_selector("#runs-empty:not([hidden])", timeout=WAIT_MS)
    running = run_flow(flow, "demo")
    # No reload: the server pushes the list when the run appears, and again when it ends.
    page.wait_for_selector('tr[data-run="runs/demo"] .state.running', timeout=WAIT_MS)
    assert running.wait(timeout=60) == 0
    page.wait_for_selector('tr[data-run="runs/demo"] .state.succeeded', timeout=WAIT_MS)


def test_a_failed_unit_shows_its_log_tail(
    tmp_path: Path, serve: Callable[..., tuple[str, str]], run_flow: Callable[..., Any], page: Any
) -> None:
    flow = write_demo(tmp_path / "demo", pause=0.2, fail=True, python=sys.executable)
    running = run_flow(flow, "broken")
    assert running.wait(timeout=60) == 1
    url, _ = serve("runs")
    page.goto(f"{url}#/run/{quote('runs/broken', safe='')}")
    page.wait_for_selector("#run-state.failed", timeout=WAIT_MS)
    assert "publish: exited with code 4" in page.locator("#run-note").inner_text()
    page.click('.row.unit[data-unit$="/publish"][data-state="failed"]')
    tail = page.wait_for_selector('#detail[data-unit$="/publish"] .log.stderr')
    assert "publish: cannot reach the archive: connection refused" in tail.inner_text()
    assert re.search(r"exit code\s*4", page.locator("#detail dl").inner_text())


def test_meta_run_ui_opens_the_page_of_the_run_it_starts(tmp_path: Path, page: Any) -> None:
    flow = write_demo(tmp_path / "demo", pause=0.6, python=sys.executable)
    opened = tmp_path / "opened.txt"
    # webbrowser runs $BROWSER with the address: here a script that notes it.
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    running = subprocess.Popen(
        [str(META), "run", str(flow), "--workdir", "runs/mine", "--ui"],
        cwd=tmp_path,
        env={**os.environ, "BROWSER": f"{browser} %s"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert running.stderr is not None
        said = running.stderr.readline()
        assert said.startswith("meta ui: http://127.0.0.1:") and "#/run/runs%2Fmine" in said
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = opened.read_text().strip()
        assert url == said.split()[2]
        page.goto(url)
        page.wait_for_selector('.row.unit[data-unit$="/fetch"]', timeout=WAIT_MS)
        assert page.locator(".flow").inner_text() == "orders-demo"
    finally:
        running.terminate()
        running.wait(timeout=30)


def test_a_big_run_starts_collapsed_and_draws_only_the_rows_on_screen(
    tmp_path: Path, serve: Callable[..., tuple[str, str]], page: Any
) -> None:
    write_run(tmp_path, items=2000, done=2000)  # 4,000 units, in runs/big
    url, _ = serve("runs")
    page.goto(f"{url}#/run/{quote('runs/big', safe='')}")
    page.wait_for_selector('.row.group[data-group="big/all"]', timeout=WAIT_MS)
    assert page.locator(".row.unit").count() == 0
    assert page.locator('.row.group[data-group="big/all"] .meta').inner_text() == "4000"
    for group in ("big/all", "big/all/items", "big/all/items/item-{{ index }}"):
        page.click(f'.row.group[data-group="{group}"]')
    page.wait_for_selector('.row.unit[data-unit="big/all/items/0/item-0/parse"]')
    page.evaluate("document.getElementById('list').scrollTop = 26 * 3000")
    page.wait_for_selector('.row.unit[data-unit*="/items/1499/"]', timeout=WAIT_MS)
    assert page.locator(".row").count() < 100


def test_the_page_of_meta_run_ui_goes_with_the_run_even_when_it_is_killed(
    tmp_path: Path,
) -> None:
    flow = write_demo(tmp_path / "demo", pause=5, python=sys.executable)
    running = subprocess.Popen(
        [str(META), "run", str(flow), "--workdir", "runs/killed", "--ui"],
        cwd=tmp_path,
        env={**os.environ, "BROWSER": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert running.stderr is not None
    url = running.stderr.readline().split()[2].split("#")[0]
    with urllib.request.urlopen(url + "api/runs", timeout=10) as answer:
        assert answer.status == 200
    journal = tmp_path / "runs/killed/journal.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and '"started"' in journal.read_text():
            break
        time.sleep(0.05)
    running.kill()
    running.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "api/runs", timeout=1).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"{url} still answers after its run was killed")
    # The steps the killed session left running go with its run (as `meta clean` does it).
    cleaned = subprocess.run(
        [str(META), "clean", "runs", "--older-than", "0s"], cwd=tmp_path, capture_output=True
    )
    assert cleaned.returncode == 0

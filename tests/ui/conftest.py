"""`meta ui` run as a real process, and a real headless Chromium (Debian's) driven by
Playwright, never a browser Playwright downloads."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The browser and its flags are the benchmark's: the tests drive the same Chromium.
from benchmarks.bench_ui import CHROMIUM, CHROMIUM_ARGS, META


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[str, str]]]:
    """Start `meta ui --port 0 ARGS...` in tmp_path; its address and the line it printed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[str, str]:
        process = subprocess.Popen(
            [str(META), "ui", "--port", "0", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("meta ui: http://"), line + process.stderr.read()
        return line.split()[2], line

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def run_flow(tmp_path: Path) -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    """Start `meta run FLOW --workdir runs/NAME` in tmp_path, in the background."""
    started: list[subprocess.Popen[str]] = []

    def start(flow: Path, name: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [str(META), "run", str(flow), "--workdir", f"runs/{name}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path / "chromium-profile"
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 820},
        )
        try:
            yield context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)

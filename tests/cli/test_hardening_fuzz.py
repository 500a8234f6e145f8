"""Issue 13: `meta validate` and `meta plan` over mutated sample flows (types, values, names and
YAML features changed at random places) never give a traceback, always exit 0 or 2 with one
`FILE: /pointer: reason` line per fault, and answer within a few seconds.

Each example copies nothing: the mutant is written next to a copy of its sample (made once per
module), so the sample's inputs and flowRefs resolve as they do for the original.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FLOWS = sorted(SAMPLES.glob("*/*.flow.yaml"))
FAULT_LINE = re.compile(r"^[^\n]+: (/[^\n]*|/): [^\n]+$")
SLOWEST_ALLOWED = 5.0
_LAUGHS = (
    "[&a [x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(9))
    + "]"
)
RAW_YAML = [
    ".nan",
    "-.inf",
    "1.0e+999",
    "2020-01-01",
    "2020-01-01 10:00:00",
    "!!binary aGk=",
    "!!set {a: null}",
    "&x [*x]",
    "9" * 5000,
    "{1: a, true: c}",
    "'{{ 9 ** (9 ** 9) }}'",
    "\"{{ 'x' * 300000000 }}\"",
    "'{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'",
    "'{{ x'",
    "'{{ ''''.__class__ }}'",
    '"a\\0b"',
    '"name\\n"',
    "x" * 300,
    "/dev/zero",
    "/proc/self/environ",
    "/etc/shadow",
    "[" * 600 + "]" * 600,
    _LAUGHS,
    "!!python/object:os.system ls",
]
VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["micro", "macro", "dag", "fanout", "dfs", "bfs", "cycle", "{{ item }}"])
    | st.sampled_from([f"__RAW_{i}__" for i in range(len(RAW_YAML))]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each sample's folder, copied once; the flows in the copies."""
    root = tmp_path_factory.mktemp("samples")
    shutil.copytree(SAMPLES, root / "samples")
    return [root / "samples" / flow.relative_to(SAMPLES) for flow in FLOWS]


def _places(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document: the path of keys and indexes to it."""
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _places(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _places(value, (*path, index))


def _mutate(document: Any, place: tuple[Any, ...], operation: str, value: Any) -> Any:
    if not place:
        return value if operation == "replace" else document
    parent = document
    for part in place[:-1]:
        parent = parent[part]
    last = place[-1]
    if operation == "replace":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif operation == "rename" and isinstance(parent, dict):
        parent[str(value)] = parent.pop(last)
    elif operation == "wrap":
        parent[last] = [parent[last]]
    elif operation == "add" and isinstance(parent[last], dict):
        parent[last][str(value)[:20]] = value
    return document


def _text(document: Any) -> str:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=10**6)
    for index, raw in enumerate(RAW_YAML):
        text = text.replace(f"__RAW_{index}__", raw)
    return text


@settings(
    # More with META_FUZZ_EXAMPLES=N (the figures in the closing note: 3,000).
    max_examples=int(os.environ.get("META_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize="META_FUZZ_EXAMPLES" not in os.environ,
)
@given(
    which=st.integers(0, len(FLOWS) - 1),
    choices=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(["replace", "delete", "rename", "wrap", "add"]),
            VALUES,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_validate_and_plan_of_mutated_samples_answer_0_or_2_in_one_line_per_fault(
    copies: list[Path], which: int, choices: list[tuple[int, str, Any]]
) -> None:
    original = copies[which]
    document = yaml.safe_load(original.read_text(encoding="utf-8"))
    for pick, operation, value in choices:
        places = list(_places(document))
        document = _mutate(document, places[pick % len(places)], operation, value)
    mutant = original.with_name("mutant.flow.yaml")
    mutant.write_text(_text(document), encoding="utf-8")
    for command in ("validate", "plan"):
        started = time.monotonic()
        result = CliRunner().invoke(main, [command, str(mutant)])
        took = time.monotonic() - started
        assert result.exit_code in (0, 2), (command, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            lines = result.stderr.splitlines()
            assert lines and all(FAULT_LINE.match(line) for line in lines), lines
        assert took < SLOWEST_ALLOWED, (command, took, _text(document)[:500])
        SLOWEST[result.exit_code] = max(SLOWEST.get(result.exit_code, 0.0), took)
        COUNTS[result.exit_code] = COUNTS.get(result.exit_code, 0) + 1


SLOWEST: dict[int, float] = {}
"""The slowest answer seen, by exit code (printed with `-s`)."""
COUNTS: dict[int, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    print(f"\nfuzz answers by exit code: {COUNTS}; slowest (s): {SLOWEST}")

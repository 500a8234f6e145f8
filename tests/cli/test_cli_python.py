"""`meta validate | plan | graph | run | resume FILE.py`: a flow written in Python, run by the real
`meta` command as real processes; a Python file without a flow, or with a faulty one, is one line
per fault and exit 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import META, Result

pytestmark = pytest.mark.e2e

Meta = Callable[..., Result]
Write = Callable[[str, str], Path]

WRITE_N = (
    "import json, os; n = json.load(open(os.environ['META_INPUT']))['n']; "
    "open(os.path.join(os.environ['META_OUTPUT'], 'n.txt'), 'w').write(str(n * 10))"
)
FLOW = f"""\
from pathlib import Path

import meta.builder as mb
from helpers import python

each = mb.fanout("each", over="items", visit=python("item-{{{{ index }}}}", {WRITE_N!r}))
total = python(
    "total",
    "import os; up = os.environ['META_UPSTREAM']; "
    "print(sorted(os.listdir(up)))",
)
flow = mb.flow(
    "numbers", mb.sequence("main", each, total), inputs={{"items": Path("data/items.json")}}
)
"""
HELPERS = """\
import meta.builder as mb


def python(name, code):
    return mb.step(name, ["python3", "-c", code])
"""


@pytest.fixture
def numbers(write: Write) -> Path:
    """A Python flow in `flows/` that imports a module beside it and reads an input relative to
    its own folder."""
    write("flows/data/items.json", json.dumps([{"n": 1}, {"n": 2}, {"n": 3}]))
    write("flows/helpers.py", HELPERS)
    return write("flows/numbers.py", FLOW)


@pytest.fixture
def ran(meta: Meta, numbers: Path, tmp_path: Path) -> Path:
    """The workdir of a run of `numbers` that succeeded."""
    first = meta("run", numbers, "--workdir", tmp_path / "work")
    assert first.code == 0, first.stderr
    return tmp_path / "work"


def test_run_a_python_flow_from_another_folder(meta: Meta, numbers: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = meta("run", numbers, "--workdir", tmp_path / "work", cwd=elsewhere)
    assert result.code == 0, result.stderr
    assert "numbers: succeeded (4 units run)" in result.stdout
    report = json.loads((tmp_path / "work" / "report.json").read_text())
    written = {
        unit["id"]: Path(unit["outputs"], "n.txt").read_text()
        for unit in report["units"]
        if unit["name"].startswith("item-")
    }
    assert written == {
        "numbers/main/each/0/item-0": "10",
        "numbers/main/each/1/item-1": "20",
        "numbers/main/each/2/item-2": "30",
    }
    run_record = json.loads((tmp_path / "work" / "run.json").read_text())
    assert run_record["flow"] == str(numbers)


def test_validate_plan_and_graph_take_a_python_flow(meta: Meta, numbers: Path) -> None:
    validated = meta("validate", numbers)
    assert (validated.code, validated.stdout) == (0, "flows/numbers.py: valid\n")
    planned = meta("plan", numbers)
    assert planned.code == 0, planned.stderr
    assert planned.stdout.splitlines()[0] == "flow numbers (flows/numbers.py)"
    assert "macro section each [fanout]" in planned.stdout
    graph = meta("graph", numbers)
    assert graph.code == 0 and graph.stdout.startswith("flowchart")


def test_resume_a_python_flow(meta: Meta, ran: Path) -> None:
    again = meta("resume", ran)
    assert again.code == 0, again.stderr
    assert "(0 units run, 4 finished before)" in again.stdout


def test_resume_refuses_a_python_flow_that_now_makes_another_flow(
    meta: Meta, numbers: Path, ran: Path
) -> None:
    # The flow file is as it was; a module it imports makes its steps differently now.
    helpers = numbers.with_name("helpers.py")
    helpers.write_text(
        helpers.read_text().replace('["python3", "-c", code]', '["python3", "-Sc", code]')
    )
    again = meta("resume", ran)
    assert again.code == 2
    assert "flows/numbers.py: /: the flow changed since this run started" in again.stderr


def test_resume_takes_a_python_flow_whose_text_changed_but_not_what_it_makes(
    meta: Meta, numbers: Path, ran: Path
) -> None:
    numbers.write_text("# a comment, and the same flow\n" + numbers.read_text())
    again = meta("resume", ran)
    assert again.code == 0, again.stderr
    assert "(0 units run, 4 finished before)" in again.stdout


def test_a_function_named_flow_is_called(meta: Meta, write: Write) -> None:
    path = write(
        "made.py",
        """\
        import meta.builder as mb


        def flow():
            return mb.flow("made", mb.step("hello", ["echo", "hello"]))
        """,
    )
    result = meta("run", path, "--workdir", "work")
    assert result.code == 0, result.stderr
    assert "made: succeeded (1 units run)" in result.stdout


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n", "none.py: /: no flow here: a Python flow file defines `flow`"),
        ("flow = 42\n", "none.py: /: no flow here"),
        ("from meta.builder import flow\n", "none.py: /: no flow here"),
        ("import os\n\nos.environ['X'] += ''\n", "none.py:3: /: raised KeyError: 'X'"),
        ("def oops(:\n", "none.py:1: /: is not valid Python"),
        ("def flow():\n    return 1 / 0\n", "none.py:2: /: flow() raised ZeroDivisionError"),
    ],
)
def test_a_python_file_without_a_flow_is_one_line_and_exit_2(
    meta: Meta, write: Write, source: str, expected: str
) -> None:
    path = write("none.py", source)
    for command in ("validate", "plan", "run"):
        result = meta(command, path)
        assert result.code == 2, (command, result.stdout, result.stderr)
        lines = result.fault_lines()
        assert len(lines) == 1 and lines[0].startswith(expected), lines
        assert "Traceback" not in result.stderr


def test_a_faulty_flow_names_the_python_line_that_made_the_part(meta: Meta, write: Write) -> None:
    path = write(
        "faulty.py",
        """\
        import meta.builder as mb

        first = mb.step("first", ["echo"])
        second = mb.step("second", ["echo"], depends_on=["third"])
        flow = mb.flow("faulty", mb.dag("main", first, second))
        """,
    )
    result = meta("run", path, "--workdir", "work")
    assert result.code == 2
    assert result.fault_lines() == [
        "faulty.py:4: /spec/root/units/1/dependsOn/0: "
        "'third' names no sibling of 'second' in section 'main'"
    ]
    assert not Path(path.parent, "work").exists()


def test_a_missing_python_file_is_one_line(meta: Meta) -> None:
    result = meta("validate", "absent.py")
    assert result.code == 2
    assert result.fault_lines() == ["absent.py: /: no such file"]


def test_a_template_failing_at_run_time_names_the_line_of_its_step(
    meta: Meta, write: Write
) -> None:
    path = write(
        "late.py",
        """\
        import meta.builder as mb

        each = mb.fanout(
            "each",
            over="items",
            visit=mb.step("item", ["echo", "{{ item.missing }}"]),
        )
        flow = mb.flow("late", each, inputs={"items": [{"n": 1}]})
        """,
    )
    result = meta("run", path, "--workdir", "work")
    assert result.code == 2
    (line,) = result.fault_lines()
    assert line.startswith("late.py:6: /spec/root/visit/run/command/1: undefined template")


def test_what_a_flow_module_prints_goes_to_stderr_not_into_the_graph(tmp_path: Path) -> None:
    module = tmp_path / "noisy.py"
    module.write_text(
        "import os, subprocess\n"
        "import meta.builder as mb\n"
        "os.system('echo from-system')\n"
        "subprocess.run(['echo', 'from-subprocess'])\n"
        "os.write(1, b'from-descriptor\\n')\n"
        "print('from-print')\n"
        "flow = mb.flow('f', mb.step('a', ['true']))\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(META), "graph", str(module), "--format", "mermaid"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart TD\n"), done.stdout
    for said in ("from-system", "from-subprocess", "from-descriptor", "from-print"):
        assert said in done.stderr and said not in done.stdout

"""meta.builder.module: a Python flow file run in process: its `flow` taken, paths resolved
against its folder, each unit's origin the line that made it; a file without a flow is a fault."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from meta.builder.module import is_python, python_flow
from meta.errors import FlowInvalid, UserError
from meta.flow.model import FileInput, Section, Step


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_flow_of_a_python_file_resolves_against_its_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path / "flows" / "etl.py",
        """\
        from pathlib import Path

        import meta.builder as mb

        first = mb.step("first", ["echo", "1"])
        second = mb.step("second", ["echo", "2"])
        flow = mb.flow("etl", mb.sequence("main", first, second), inputs={"rows": Path("r.json")})
        """,
    )
    typed = python_flow(path)
    assert typed.name == "etl" and typed.source == path
    assert typed.inputs == {"rows": FileInput(tmp_path / "flows" / "r.json")}
    root = typed.root
    assert isinstance(root, Section)
    assert [unit.origin.file.rsplit(":", 1)[1] for unit in root.units] == ["5", "6"]
    assert root.origin.file.endswith("etl.py:7")
    assert all(isinstance(unit, Step) for unit in root.units)
    assert str(path.parent) not in sys.path, "the folder is on sys.path only while it runs"


def test_a_failed_module_leaves_nothing_behind(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", "raise RuntimeError('no')\n")
    before = set(sys.modules)
    with pytest.raises(UserError, match=r"broken.py:1: /: raised RuntimeError: no"):
        python_flow(path)
    assert set(sys.modules) == before


@pytest.mark.parametrize("where", ["module", "function"])
def test_what_the_module_changes_of_the_process_is_put_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    meddling = "import os; os.chdir('/'); os.umask(0); print('hello')"
    body = (
        f"{meddling}\nflow = mb.flow('f', mb.step('a', ['true']))\n"
        if where == "module"
        else f"def flow():\n    {meddling}\n    return mb.flow('f', mb.step('a', ['true']))\n"
    )
    path = write(tmp_path / "meddles.py", "import meta.builder as mb\n" + body)
    monkeypatch.chdir(tmp_path)
    mask = os.umask(0o027)
    try:
        assert python_flow(path).name == "f"
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(mask)
    assert Path.cwd() == tmp_path
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("", "hello\n"), "meta's own output stays its own"


def test_a_file_whose_flow_is_not_a_flow_says_what_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.py", "flow = {'apiVersion': 'meta-orchestrator.io/v1alpha1'}\n")
    with pytest.raises(FlowInvalid, match=r"no flow here: .* \(`flow` is dict\)"):
        python_flow(path)


def test_only_py_files_are_python() -> None:
    assert is_python(Path("a/etl.py")) and is_python(Path("ETL.PY"))
    assert not is_python(Path("etl.flow.yaml"))

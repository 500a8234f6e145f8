"""A flow file written in Python: the module is run (it is the user's own code, as `python
FILE.py` would run it) and its `flow` taken.

`flow` is either a flow made with `meta.builder.flow(...)`, or a function of no arguments named
`flow` that returns one. The module runs with its own folder first on `sys.path`, so it can
import the modules beside it. Only a file a person names on the command line is run this way:
a flowRef names YAML, so a flow document (a MetaFlow resource, a generated flow) never makes
meta run Python code.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from meta.builder.document import Flow
from meta.errors import Fault, FlowInvalid, UserError
from meta.flow.files import display_path
from meta.flow.model import Flow as TypedFlow
from meta.flow.reading import kind_problem

SUFFIX = ".py"
NO_FLOW = (
    "no flow here: a Python flow file defines `flow`, a flow made with meta.builder.flow(...), "
    "or a function flow() of no arguments that returns one"
)


def is_python(path: Path) -> bool:
    """Whether `path` names a flow written in Python (by its suffix)."""
    return path.suffix.lower() == SUFFIX


def python_flow(path: Path) -> TypedFlow:
    """The typed flow the Python file at `path` makes; relative paths in it resolve against the
    file's folder. A fault (the file, the code, the flow) is a `UserError`."""
    path = path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()
    return built(path).to_flow(path)


def built(path: Path) -> Flow:
    """The `meta.builder` flow the Python file at `path` defines."""
    shown = display_path(path)
    problem = kind_problem(path)
    if problem is not None:
        raise FlowInvalid(Fault(shown, "", "no such file" if problem == "not found" else problem))
    module = _run(path, shown)
    found: Any = getattr(module, "flow", None)
    if (
        callable(found)
        and not isinstance(found, Flow)
        and getattr(found, "__module__", None) == module.__name__
    ):
        found = _called(found, path, shown)
    if not isinstance(found, Flow):
        raise FlowInvalid(Fault(shown, "", NO_FLOW + _what(found)))
    return found


def _run(path: Path, shown: str) -> ModuleType:
    # A name of its own per file: two flow files named flow.py do not share a module.
    name = "meta_flow_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowInvalid(Fault(shown, "", "cannot be loaded as a Python module"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        with _contained():
            spec.loader.exec_module(module)
    except (KeyboardInterrupt, UserError):
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise UserError(Fault(_line(exc, path, shown), "", _raised(exc))) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _called(function: Any, path: Path, shown: str) -> Any:
    try:
        with _contained():
            return function()
    except (KeyboardInterrupt, UserError):
        raise
    except BaseException as exc:
        raise UserError(Fault(_line(exc, path, shown), "", "flow() " + _raised(exc))) from None


@contextlib.contextmanager
def _contained() -> Iterator[None]:
    """What the user's code changes of meta's own process is put back once it has run: the
    working folder (a relative workdir would be made elsewhere than said) and the umask;
    what it prints goes to stderr (meta's stdout may be a file: `meta graph F.py > g.mmd`)."""
    folder = os.getcwd()
    mask = os.umask(0o022)
    os.umask(mask)
    sys.stdout.flush()
    # The descriptor too: `os.system("echo")` and a subprocess write to descriptor 1.
    try:
        saved: int | None = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        os.chdir(folder)
        os.umask(mask)


def _raised(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"is not valid Python: {exc.msg}"
    return f"raised {type(exc).__name__}: {exc}"


def _line(exc: BaseException, path: Path, shown: str) -> str:
    """`FILE:LINE` of the deepest frame of the flow file in the exception's traceback."""
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return f"{shown}:{exc.lineno}"
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename) == path and frame.lineno is not None
    ]
    return f"{shown}:{lines[-1]}" if lines else shown


def _what(found: Any) -> str:
    if found is None:
        return ""
    return f" (`flow` is {type(found).__name__})"

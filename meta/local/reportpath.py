"""Where a `--report` may be written: a new file, or a regular file that holds nothing of value.

The report is written whole to a temporary file and renamed over its path, so whatever is at the
path is replaced, not written into. That must never be a device (`/dev/full`), a flow file, an
input file, or a file of the workdir (its journal, its run record, its store): those would be
lost. The rules are checked before anything runs, on the paths as the system resolves them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from meta.errors import Fault, UserError
from meta.flow.files import display_path
from meta.flow.model import FileInput
from meta.plan.plan import Plan

WORKDIR_REPORT = "report.json"
RUN_RECORD = "run.json"


def protected_files(plan: Plan) -> Iterator[Path]:
    """The flow files and input files of a plan and every plan it references."""
    for current in plan.reachable():
        yield current.flow.source
        for spec in current.inputs.values():
            if isinstance(spec, FileInput):
                yield spec.path


def check_report_path(report: Path | None, workdir: Path, protected: Iterable[Path]) -> None:
    """Refuse (exit 2) a report path that could not be written, or whose writing would destroy
    something: anything but a missing or regular file, a flow or input file, a file inside a
    workdir (this run's or another's) but this run's own report.json."""
    if report is None:
        return
    problem = _problem(report, workdir, protected)
    if problem is not None:
        raise UserError(Fault(display_path(report), "", f"the report {problem}"))


def _problem(report: Path, workdir: Path, protected: Iterable[Path]) -> str | None:
    if report.parent.exists() and not report.parent.is_dir():
        return f"cannot be written: {display_path(report.parent)} is not a folder"
    try:
        status = os.lstat(report)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        return f"cannot be written: {exc.strerror}"
    if status is not None and stat.S_ISDIR(status.st_mode):
        return "is a folder"
    if status is not None and not stat.S_ISREG(status.st_mode):
        # A link could lead anywhere, and a device or FIFO would be replaced by a file.
        return "would replace something that is not a regular file"
    target = Path(os.path.realpath(report))
    if any(target == Path(os.path.realpath(path)) for path in protected):
        return "would replace a flow or input file of this run"
    home = Path(os.path.realpath(workdir))
    for folder in target.parents:
        # This run's workdir, or any other (a folder with a run record): its journal, store
        # and record are a run's state.
        if folder == home or (folder / RUN_RECORD).is_file():
            if target != home / WORKDIR_REPORT:
                return "would replace a file of the workdir (only its report.json may be)"
            break
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be written: {exc.strerror}"
    if not os.access(report.parent, os.W_OK):
        return "cannot be written: its folder is not writable"
    return None

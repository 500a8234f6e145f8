"""Where a `--report` (or another file `meta` writes where told, such as `meta generate -o`) may
be written: a new file, or a regular file that holds nothing of value.

The file is written whole to a temporary file and renamed over its path, so whatever is at the
path is replaced, not written into. That must never be a device (`/dev/full`), a file it is made
from (a flow, an input, a description), or a file of a workdir (its journal, its run record, its
store): those would be lost. The rules are checked before anything runs, on the paths as the
system resolves them.
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
    check_output_path(
        report, "the report", protected, "a flow or input file of this run", workdir=workdir
    )


def check_output_path(
    output: Path,
    what: str,
    protected: Iterable[Path],
    protected_are: str,
    *,
    workdir: Path | None = None,
) -> None:
    """Refuse (exit 2) an output path (`what` names it in the fault) that could not be written,
    or whose writing would destroy something: anything but a missing or regular file, one of
    `protected` (`protected_are` says what they are), a file inside a workdir (but `workdir`'s
    own report.json, when `workdir` is given)."""
    problem = _problem(output, workdir, protected, protected_are)
    if problem is not None:
        raise UserError(Fault(display_path(output), "", f"{what} {problem}"))


def _problem(
    output: Path, workdir: Path | None, protected: Iterable[Path], protected_are: str
) -> str | None:
    if output.parent.exists() and not output.parent.is_dir():
        return f"cannot be written: {display_path(output.parent)} is not a folder"
    try:
        status = os.lstat(output)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        return f"cannot be written: {exc.strerror}"
    if status is not None and stat.S_ISDIR(status.st_mode):
        return "is a folder"
    if status is not None and not stat.S_ISREG(status.st_mode):
        # A link could lead anywhere, and a device or FIFO would be replaced by a file.
        return "would replace something that is not a regular file"
    target = Path(os.path.realpath(output))
    if any(target == Path(os.path.realpath(path)) for path in protected):
        return f"would replace {protected_are}"
    home = None if workdir is None else Path(os.path.realpath(workdir))
    for folder in target.parents:
        # This run's workdir, or any other (a folder with a run record): its journal, store
        # and record are a run's state.
        if folder == home or (folder / RUN_RECORD).is_file():
            if home is None:
                return "would replace a file of a run's workdir"
            if target != home / WORKDIR_REPORT:
                return "would replace a file of the workdir (only its report.json may be)"
            break
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be written: {exc.strerror}"
    if not os.access(output.parent, os.W_OK):
        return "cannot be written: its folder is not writable"
    return None

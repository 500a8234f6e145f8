"""What every command shares: exit codes, one line per user fault, writing an output file,
the `-o` and `--cache-dir` options, how a time span is shown."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from meta.cli import UNWRITABLE, cannot_write
from meta.errors import Fault, MetaError, UserError
from meta.flow.files import display_path
from meta.local.report import write_text


class Place(click.Path):
    """A path given on the command line; an empty one is refused (it would be the current
    folder: `--workdir ""` made a project's folder a run's workdir)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value:
            self.fail("an empty path", param, ctx)
        return super().convert(value, param, ctx)


EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

SETS = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Give input NAME: a YAML value (n=3, tags=[a,b], mode=slow), or a file with "
    "NAME=@PATH (for an input declared with a path, NAME=PATH also names a file). Repeatable.",
)


def user_errors(command: F) -> F:
    """Turn the library's user errors into one line per fault on stderr and exit code 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            for fault in exc.faults:
                click.echo(str(fault), err=True)
            sys.exit(EXIT_USER_ERROR)
        except MetaError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
            cannot_write(exc)

    return wrapper  # type: ignore[return-value]


def write_output(output: Path, text: str) -> None:
    try:
        write_text(output, text)
    except OSError as exc:
        raise UserError(Fault(display_path(output), "", f"cannot write: {exc}")) from None


cache_dir_option = click.option(
    "--cache-dir",
    type=Place(path_type=Path, file_okay=False),
    default=None,
    help="The cache runs share for units that say `cache:` "
    "[default: ~/.cache/meta-orchestrator/outputs; $META_CACHE_DIR/outputs when set].",
)


OUTPUT = click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Lines for people, or JSON for scripts.",
)


def duration(seconds: float | None) -> str:
    """A time span as `meta runs` and `meta cache ls` show it: 4.2s, 3m05s, 2h10m, 1d04h."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    for size, unit, small, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{(whole % size) // small:02d}{small_unit}"
    return f"{whole}s"


RESULT_SHOWN = 200


def shown_result(result: Any) -> str:
    """A result on one line, cut to RESULT_SHOWN characters (`-o json` has it whole)."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= RESULT_SHOWN else text[: RESULT_SHOWN - 1] + "…"


_CONTROLS = {
    code: f"\\x{code:02x}"
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
    if chr(code) not in "\t\n"
}


def printable(text: str) -> str:
    """What a step wrote (its stderr's tail, a reason quoting it), safe for a terminal: control
    characters, ESC and the C1 set among them, are shown escaped (`\\x1b`), so a step can
    neither set the terminal's title, reset or recolour it, nor overwrite the lines around."""
    return text.translate(_CONTROLS)

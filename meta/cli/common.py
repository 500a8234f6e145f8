"""What every command shares: exit codes, one line per user fault, writing an output file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from meta.errors import Fault, MetaError, UserError
from meta.flow.files import display_path
from meta.local.report import write_text

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

    return wrapper  # type: ignore[return-value]


def write_output(output: Path, text: str) -> None:
    try:
        write_text(output, text)
    except OSError as exc:
        raise UserError(Fault(display_path(output), "", f"cannot write: {exc}")) from None


RESULT_SHOWN = 200


def shown_result(result: Any) -> str:
    """A result on one line, cut to RESULT_SHOWN characters (`-o json` has it whole)."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= RESULT_SHOWN else text[: RESULT_SHOWN - 1] + "…"

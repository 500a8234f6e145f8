"""The one exception family for faults a user can cause.

    MetaError
     ├── UserError            a fault in something the user wrote or gave: exit 2, nothing run
     │    ├── FlowInvalid      one or more faults in flow files (schema and semantic checks)
     │    ├── InputFault       an input file that is missing or holds invalid data
     │    ├── TemplateFault    a template that cannot be rendered for the data at hand
     │    └── LimitExceeded    generated flows nest deeper, or start more units, than allowed
     ├── RunFailed            a unit failed while the flow ran: exit 1
     │
     │   raised inside one layer, and turned into one of the above (or a failed attempt) there:
     ├── TemplateProblem      meta.flow.templates: a template that cannot compile or render
     ├── OutputRefused        meta.trees: an output that is a link out, or a special file
     ├── ApiFailed            meta.kube.api: the API server refused or did not answer
     │    ├── Conflict         (.retryable says whether asking again may help;
     │    └── NotFound          the client's own exception is the cause)
     ├── InputTooLarge        meta.kube.layout: an input too large for a pod annotation
     ├── StoreEscape          meta.kube.controller.files: a store folder leading out of it
     └── SlotLost             meta.kube.quarterback.slots: a slot container that went away

Every `UserError` carries `Fault`s that name the file and the JSON pointer of the fault, so
the CLI prints one line per fault: ``FILE: /json/pointer: reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(32), *range(127, 160))} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
    0: "\\0",
}


def escaped(text: str) -> str:
    """`text` on one line, safe for a terminal: a newline, a NUL or another control character in
    a name the user chose is shown escaped (`\\n`), not printed."""
    return text.translate(_ESCAPED)


@dataclass(frozen=True)
class Fault:
    """One located fault: the file, the JSON pointer inside it, and what is wrong."""

    file: str
    pointer: str
    reason: str

    def __str__(self) -> str:
        # One line whatever the parts hold: a NUL or a newline in a path or a name is shown
        # escaped, not printed.
        return escaped(f"{self.file}: {self.pointer or '/'}: {self.reason}")


class MetaError(Exception):
    """The base of every error meta-orchestrator raises on purpose."""


class UserError(MetaError):
    """Something the user wrote or gave is wrong; the CLI exits 2."""

    def __init__(self, faults: Fault | Iterable[Fault]) -> None:
        self.faults: tuple[Fault, ...] = (faults,) if isinstance(faults, Fault) else tuple(faults)
        super().__init__("\n".join(str(fault) for fault in self.faults))

    def one_line(self) -> str:
        """Its faults on one line, for a place that holds a single reason."""
        return "; ".join(str(fault) for fault in self.faults)


class FlowInvalid(UserError):
    """A flow file fails the schema or a semantic check."""


class InputFault(UserError):
    """An input is missing or holds data that cannot be used."""


class TemplateFault(UserError):
    """A template (or a `when` expression) fails for the data it is rendered with."""


class LimitExceeded(UserError):
    """A run went past its spec.limits (generated flows nested too deep, too many units)."""


@dataclass(frozen=True)
class Failure:
    """One unit that failed: its id, why, and the last words of its last attempt."""

    unit_id: str
    reason: str
    stderr_tail: str = ""


class RunFailed(MetaError):
    """One or more units failed while the flow ran; the report says which and why. The first
    failure is the one named by `unit_id` and `reason`; `failures` holds every one (a section
    with `onFailure: continue` gathers them all, a failing finally unit adds its own)."""

    def __init__(
        self, unit_id: str, reason: str, stderr_tail: str = "", *, more: Sequence[Failure] = ()
    ) -> None:
        self.unit_id = unit_id
        self.reason = reason
        self.stderr_tail = stderr_tail
        self.failures: tuple[Failure, ...] = (Failure(unit_id, reason, stderr_tail), *more)
        if more:
            others = ", ".join(failure.unit_id for failure in more)
            super().__init__(f"unit {unit_id} failed: {reason} (and {others})")
        else:
            super().__init__(f"unit {unit_id} failed: {reason}")

    @classmethod
    def of(cls, failures: Sequence[Failure]) -> RunFailed:
        """One error for several failures, the first named first."""
        first, *more = failures
        return cls(first.unit_id, first.reason, first.stderr_tail, more=more)


def pointer(parts: Sequence[str | int]) -> str:
    """The RFC 6901 JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def unescape(segment: str) -> str:
    """One key of a JSON pointer, with RFC 6901's `~1` and `~0` decoded."""
    return segment.replace("~1", "/").replace("~0", "~")


def lookup(document: Any, where: str) -> Any:
    """The value at JSON pointer `where` in `document`; `LookupError` carrying the pointer of
    the first key that is not there."""
    value = document
    walked: list[str] = []
    for raw in where.split("/")[1:] if where else []:
        key = unescape(raw)
        walked.append(key)
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise LookupError(pointer(walked))
    return value

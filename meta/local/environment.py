"""What a local step's environment holds, and the secrets it may take.

A step sees `PATH`, `HOME`, `LANG`, `TZ` and `TMPDIR`, the `META_*` variables of its attempt,
and what its `env` declares: nothing else of `meta`'s environment. A declared variable may take
its value `fromEnv` (a variable of `meta`'s own environment, named explicitly) or from a
`secretRef`, which `--secret` gives locally:

    --secret NAME/KEY=@FILE     key KEY of secret NAME is the text of FILE (as it is)
    --secret NAME/KEY=env:VAR   ... is the value of VAR in meta's environment
    --secret NAME=@FOLDER       every regular file in FOLDER is a key (a mounted Secret's layout)

A value is never given on the command line itself (other users' `ps` would show it). Secret
values are read when the run starts and kept in memory only: `run.json` records no secret, so
`meta resume` takes `--secret` again. Anything `meta` writes that a step's output flows into
(the stderr tail of the report, the journal and error lines) has them replaced by `***`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta.errors import Fault, UserError
from meta.flow.files import display_path, read_text
from meta.flow.model import EnvValue, FromEnv, SecretRef
from meta.plan.plan import Plan, plan_steps

BASE = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")
"""What a step sees of its surroundings besides what it declares."""
SOURCE = "--secret"
MASK = "***"
MIN_REDACTED = 4
"""Shorter secret values are not masked: masking every "a" in a log would hide it all."""
MAX_SECRET_BYTES = 1 << 20


def base_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables every step sees, from `meta`'s own environment or sensible defaults.
    PATH starts with the folder of the Python `meta` runs on, so steps find `meta` (built-in
    steps) and that Python, as in an image that has meta-orchestrator installed."""
    tools = os.path.dirname(sys.executable)
    return {
        "PATH": os.pathsep.join([tools, environ.get("PATH") or os.defpath]),
        "HOME": environ.get("HOME") or os.path.expanduser("~"),
        "LANG": environ.get("LANG") or "C.UTF-8",
        "TZ": environ.get("TZ") or "UTC",
        "TMPDIR": environ.get("TMPDIR") or tempfile.gettempdir(),
    }


@dataclass(frozen=True, eq=False)
class Secrets:
    """The secret values given with `--secret`, by (secret name, key)."""

    values: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """`text` with every secret value (and a secret's end that a cut-off text begins
        with) replaced by MASK."""
        for value in sorted(self._masked(), key=len, reverse=True):
            text = text.replace(value, MASK)
        for value in self._masked():
            for start in range(1, len(value) - MIN_REDACTED + 1):
                if text.startswith(value[start:]):
                    text = MASK + text[len(value) - start :]
                    break
        return text

    def redact_value(self, value: Any) -> Any:
        """A JSON value (a step's result) with every secret value in its texts, keys
        included, replaced by MASK: a result is written to the journal and the report."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, dict):
            return {self.redact(key): self.redact_value(item) for key, item in value.items()}
        return value

    def _masked(self) -> Iterator[str]:
        for value in self.values.values():
            for part in {value, *value.splitlines()}:
                if len(part.strip()) >= MIN_REDACTED:
                    yield part


def read_secrets(texts: Iterable[str], environ: Mapping[str, str]) -> Secrets:
    """The secrets of the `--secret` options; a malformed one, or one whose file or variable
    is not there, is a UserError (nothing has run yet)."""
    values: dict[tuple[str, str], str] = {}
    for text in texts:
        values.update(_one(text, environ))
    return Secrets(values)


def _one(text: str, environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    target, sep, source = text.partition("=")
    name, slash, key = target.partition("/")
    where = f"/{target}"
    if not sep or not name or (slash and not key):
        reason = "expected NAME/KEY=@FILE, NAME/KEY=env:VAR or NAME=@FOLDER"
        raise UserError(Fault(SOURCE, "", f"{target[:60]!r}: {reason}"))
    if source.startswith("env:"):
        if not slash:
            raise UserError(Fault(SOURCE, where, "env:VAR gives one key: write NAME/KEY=env:VAR"))
        if source[4:] not in environ:
            reason = f"the variable {source[4:]!r} is not in meta's environment"
            raise UserError(Fault(SOURCE, where, reason))
        return {(name, key): environ[source[4:]]}
    if not source.startswith("@") or len(source) == 1:
        reason = "give the value from a file (@FILE) or a variable (env:VAR), never inline"
        raise UserError(Fault(SOURCE, where, reason))
    path = Path(source[1:])
    if slash:
        return {(name, key): _read(path, where)}
    if not path.is_dir():
        reason = f"{display_path(path)} is not a folder (NAME=@FOLDER; NAME/KEY=@FILE for a file)"
        raise UserError(Fault(SOURCE, where, reason))
    return {
        (name, entry.name): _read(entry, where)
        for entry in sorted(path.iterdir())
        if entry.is_file() and not entry.name.startswith(".")
    }


def _read(path: Path, where: str) -> str:
    try:
        return read_text(path, UserError, missing="not found")
    except UserError as exc:
        raise UserError(
            [Fault(SOURCE, where, f"secret file {f.file} {f.reason}") for f in exc.faults]
        ) from None


def resolve(value: EnvValue, environ: Mapping[str, str], secrets: Secrets) -> str:
    """The value of one declared variable; a KeyError naming what is missing when it has
    none."""
    if isinstance(value, str):
        return value
    if isinstance(value, FromEnv):
        return environ[value.name]
    return secrets.values[(value.name, value.key)]


def digested(value: EnvValue, environ: Mapping[str, str], secrets: Secrets) -> str:
    """What a cache key may hold of one declared variable: a string as it is, a value taken
    from elsewhere only by its digest (`sha256:HEX`), so a key changes with a secret without
    holding it."""
    if isinstance(value, str):
        return value
    digest = hashlib.sha256(resolve(value, environ, secrets).encode()).hexdigest()
    return f"sha256:{digest}"


def missing_sources(plan: Plan, environ: Mapping[str, str], secrets: Secrets) -> list[Fault]:
    """A fault for every variable of the plan's steps (its flowRefs' included) that takes its
    value from a variable or a secret that is not given."""
    faults: list[Fault] = []
    for step in plan_steps(plan):
        for key, value in step.run.env.items():
            reason = missing_source(value, environ, secrets)
            if reason is not None:
                origin = step.origin.at("run", "env", key)
                faults.append(Fault(origin.file, origin.pointer, reason))
    return faults


def missing_source(value: EnvValue, environ: Mapping[str, str], secrets: Secrets) -> str | None:
    """Why `value` has no value here, or None."""
    if isinstance(value, FromEnv) and value.name not in environ:
        return f"fromEnv: {value.name} is not in meta's environment"
    if isinstance(value, SecretRef) and (value.name, value.key) not in secrets.values:
        return (
            f"secret {value.name}/{value.key} is not given: "
            f"--secret {value.name}/{value.key}=@FILE (or =env:VAR)"
        )
    return None

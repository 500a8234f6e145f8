"""Check one CSV resource of a Data Package against its Table Schema, with the standard library.

As a flow step, ``meta-tableschema-check PACKAGE INDEX`` (or ``python3 -m meta_tableschema.check
PACKAGE INDEX``) reads the resource object from META_INPUT, opens its CSV relative to the
directory of PACKAGE (the datapackage.json), and writes META_OUTPUT/report.json::

    {"resource": NAME, "index": INDEX, "path": PATH, "rows": N, "valid": BOOL,
     "errors": [{"row": ROW, "field": FIELD, "message": TEXT}]}

`rows` counts the data rows. `row` numbers the CSV records with the header as row 1 (null for a
fault of the whole file); `field` is null for a fault of a whole row. Bad data goes into the
report and the step succeeds, so that the gather can report every resource; a step that cannot
run at all (no META_INPUT, bad arguments) exits 2 with one line on stderr.

Supported: field types string, integer, number, boolean, date (YYYY-MM-DD); constraints
required, minimum, maximum, enum, pattern; primaryKey; missingValues; the dialect's delimiter
and quoteChar; the resource's encoding. Anything else in a schema is refused, not ignored.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

FIELD_TYPES = ("string", "integer", "number", "boolean", "date")
CONSTRAINTS = ("required", "minimum", "maximum", "enum", "pattern")
ORDERED_TYPES = ("integer", "number", "date")
DIALECT_KEYS = ("delimiter", "quoteChar")
TRUE_VALUES = frozenset({"true", "True", "TRUE", "1"})
FALSE_VALUES = frozenset({"false", "False", "FALSE", "0"})
MAX_ERRORS = 1000
"""A report lists at most this many errors per resource (then says that more were cut)."""

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|INF|-INF")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Problem:
    """A fault in a resource's description: its JSON pointer below the resource, and why."""

    pointer: str
    reason: str


class DescriptionError(ValueError):
    """A resource description that cannot be checked; `problems` lists every fault."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.pointer or '/'}: {p.reason}" for p in self.problems))


@dataclass(frozen=True)
class Error:
    """One fault in the data."""

    row: int | None
    field: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False
    minimum: tuple[Any, str] | None = None
    maximum: tuple[Any, str] | None = None
    enum: tuple[tuple[Any, ...], str] | None = None
    pattern: re.Pattern[str] | None = None

    def check(self, raw: str, missing: frozenset[str]) -> tuple[Any, str | None]:
        """The cell's value, and what is wrong with it (None when nothing is)."""
        if raw in missing:
            return None, "a value is required" if self.required else None
        if self.pattern is not None and not self.pattern.fullmatch(raw):
            return None, f"{raw!r} does not match the pattern {self.pattern.pattern!r}"
        try:
            value = cast(self.type, raw)
        except ValueError as exc:
            return None, str(exc)
        if self.minimum is not None and value < self.minimum[0]:
            return value, f"{raw} is less than the minimum {self.minimum[1]}"
        if self.maximum is not None and value > self.maximum[0]:
            return value, f"{raw} is more than the maximum {self.maximum[1]}"
        if self.enum is not None and value not in self.enum[0]:
            return value, f"{raw!r} is not one of {self.enum[1]}"
        return value, None


@dataclass(frozen=True)
class Table:
    """What checking a CSV needs: its fields, primary key and reading options."""

    fields: tuple[Field, ...]
    primary_key: tuple[str, ...] = ()
    missing_values: frozenset[str] = frozenset({""})
    delimiter: str = ","
    quote_char: str = '"'
    encoding: str = "utf-8"


def cast(kind: str, raw: str) -> Any:
    """The value of a CSV cell of type `kind`; ValueError saying why it is not one."""
    if kind == "string":
        return raw
    if kind == "integer":
        if _INTEGER.fullmatch(raw):
            return int(raw)
        raise ValueError(f"{raw!r} is not an integer")
    if kind == "number":
        if _NUMBER.fullmatch(raw):
            return float(raw)
        raise ValueError(f"{raw!r} is not a number")
    if kind == "boolean":
        if raw in TRUE_VALUES:
            return True
        if raw in FALSE_VALUES:
            return False
        raise ValueError(f"{raw!r} is not a boolean (true or false)")
    if kind == "date":
        if _DATE.fullmatch(raw):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)")
    raise ValueError(f"unknown field type {kind!r}")


def _from_json(kind: str, value: Any) -> Any:
    """A constraint's value (as written in JSON) in the field's type."""
    if isinstance(value, str):
        return cast(kind, value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{json.dumps(value)} is not a {kind}")


def read_table(resource: Any) -> Table:
    """The `Table` a resource describes; `DescriptionError` listing every fault in it."""
    problems: list[Problem] = []
    table = _parse(resource, problems)
    if problems or table is None:
        raise DescriptionError(problems)
    return table


def resource_problems(resource: Any) -> list[Problem]:
    """Every fault that keeps a resource from being checked (empty when it can be)."""
    problems: list[Problem] = []
    _parse(resource, problems)
    return problems


def _parse(resource: Any, problems: list[Problem]) -> Table | None:
    if not isinstance(resource, dict):
        problems.append(Problem("", "a resource must be an object"))
        return None
    if "data" in resource:
        problems.append(Problem("/data", "inline data is not supported; give a CSV `path`"))
    path = resource.get("path")
    if isinstance(path, list):
        problems.append(Problem("/path", "multi-part paths are not supported; give one file"))
    elif not isinstance(path, str) or not path:
        problems.append(Problem("/path", "a resource needs a `path` to its CSV file"))
    elif "://" in path or os.path.isabs(path) or ".." in Path(path).parts:
        problems.append(
            Problem("/path", f"{path!r} is not a relative path inside the package's directory")
        )
    if resource.get("format", "csv") != "csv":
        problems.append(Problem("/format", f"format {resource['format']!r} is not supported (csv)"))
    encoding = resource.get("encoding", "utf-8")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        problems.append(Problem("/encoding", f"unknown encoding {encoding!r}"))
        encoding = "utf-8"
    dialect = resource.get("dialect", {})
    delimiter, quote_char = ",", '"'
    if not isinstance(dialect, dict):
        problems.append(Problem("/dialect", "a dialect must be an object"))
    else:
        for key in sorted(set(dialect) - set(DIALECT_KEYS)):
            problems.append(Problem(f"/dialect/{key}", f"dialect option {key!r} is not supported"))
        for key in DIALECT_KEYS:
            char = dialect.get(key)
            if char is not None and (not isinstance(char, str) or len(char) != 1):
                problems.append(Problem(f"/dialect/{key}", f"{key} must be one character"))
        delimiter = dialect.get("delimiter", delimiter)
        quote_char = dialect.get("quoteChar", quote_char)
    schema = resource.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        problems.append(Problem("/schema", "a resource needs a Table Schema with a `fields` list"))
        return None
    fields = [
        _field(raw, f"/schema/fields/{i}", problems) for i, raw in enumerate(schema["fields"])
    ]
    names: list[str] = []
    for i, field in enumerate(fields):
        if field is not None and field.name in names:
            problems.append(Problem(f"/schema/fields/{i}/name", f"duplicate field {field.name!r}"))
        elif field is not None:
            names.append(field.name)
    key = schema.get("primaryKey", [])
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list) or not all(isinstance(name, str) for name in key):
        problems.append(Problem("/schema/primaryKey", "a primary key is a field name or a list"))
        key = []
    for name in key:
        if name not in names:
            problems.append(
                Problem("/schema/primaryKey", f"primary key field {name!r} is no field")
            )
    missing = schema.get("missingValues", [""])
    if not isinstance(missing, list) or not all(isinstance(value, str) for value in missing):
        problems.append(Problem("/schema/missingValues", "missingValues must be a list of strings"))
        missing = [""]
    if "foreignKeys" in schema:
        problems.append(Problem("/schema/foreignKeys", "foreignKeys are not supported"))
    return Table(
        fields=tuple(field for field in fields if field is not None),
        primary_key=tuple(key),
        missing_values=frozenset(missing),
        delimiter=delimiter if isinstance(delimiter, str) and len(delimiter) == 1 else ",",
        quote_char=quote_char if isinstance(quote_char, str) and len(quote_char) == 1 else '"',
        encoding=encoding,
    )


def _field(raw: Any, at: str, problems: list[Problem]) -> Field | None:
    if not isinstance(raw, dict):
        problems.append(Problem(at, "a field must be an object"))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{at}/name", "a field needs a name"))
        return None
    kind = raw.get("type", "string")
    if kind not in FIELD_TYPES:
        problems.append(
            Problem(f"{at}/type", f"type {kind!r} is not supported ({', '.join(FIELD_TYPES)})")
        )
        return None
    if raw.get("format", "default") != "default":
        problems.append(Problem(f"{at}/format", f"format {raw['format']!r} is not supported"))
    constraints = raw.get("constraints", {})
    if not isinstance(constraints, dict):
        problems.append(Problem(f"{at}/constraints", "constraints must be an object"))
        return Field(name, kind)
    at = f"{at}/constraints"
    for key in sorted(set(constraints) - set(CONSTRAINTS)):
        problems.append(
            Problem(
                f"{at}/{key}", f"constraint {key!r} is not supported ({', '.join(CONSTRAINTS)})"
            )
        )
    required = constraints.get("required", False)
    if not isinstance(required, bool):
        problems.append(Problem(f"{at}/required", "required must be true or false"))
        required = False
    limits: dict[str, tuple[Any, str] | None] = {"minimum": None, "maximum": None}
    for key in limits:
        if key not in constraints:
            continue
        if kind not in ORDERED_TYPES:
            problems.append(Problem(f"{at}/{key}", f"{key} applies to {', '.join(ORDERED_TYPES)}"))
            continue
        try:
            limits[key] = (_from_json(kind, constraints[key]), json.dumps(constraints[key]))
        except ValueError as exc:
            problems.append(Problem(f"{at}/{key}", str(exc)))
    enum: tuple[tuple[Any, ...], str] | None = None
    if "enum" in constraints:
        values = constraints["enum"]
        if not isinstance(values, list) or not values:
            problems.append(Problem(f"{at}/enum", "enum must be a non-empty list"))
        else:
            try:
                enum = (tuple(_from_json(kind, value) for value in values), json.dumps(values))
            except ValueError as exc:
                problems.append(Problem(f"{at}/enum", str(exc)))
    pattern: re.Pattern[str] | None = None
    if "pattern" in constraints:
        try:
            pattern = re.compile(constraints["pattern"])
        except (re.error, TypeError) as exc:
            problems.append(Problem(f"{at}/pattern", f"not a regular expression: {exc}"))
    return Field(name, kind, required, limits["minimum"], limits["maximum"], enum, pattern)


def check_csv(path: Path, table: Table) -> tuple[int, list[Error]]:
    """The number of data rows in the CSV file at `path`, and its faults against `table`."""
    errors: list[Error] = []

    def fault(row: int | None, field: str | None, message: str) -> None:
        if len(errors) < MAX_ERRORS:
            errors.append(Error(row, field, message))
        elif len(errors) == MAX_ERRORS:
            errors.append(Error(None, None, f"more than {MAX_ERRORS} errors; the rest are cut"))

    names = [field.name for field in table.fields]
    rows = 0
    row = 1
    try:
        # A UTF-8 file may begin with a byte order mark (Excel writes one): not the header's.
        utf8 = codecs.lookup(table.encoding).name == "utf-8"
        with path.open(newline="", encoding="utf-8-sig" if utf8 else table.encoding) as handle:
            reader = csv.reader(
                handle, delimiter=table.delimiter, quotechar=table.quote_char, strict=True
            )
            header = next(reader, None)
            if header is None:
                fault(None, None, "the file is empty (no header row)")
                return 0, errors
            for name in names:
                if name not in header:
                    fault(1, name, "column missing from the header")
            for i, name in enumerate(header):
                if name not in names:
                    fault(1, name, "column not in the schema")
                elif name in header[:i]:
                    fault(1, name, "duplicate column")
            if sorted(header) == sorted(names) and header != names:
                fault(1, None, f"columns {header} are not in the schema's order {names}")
            where = {name: header.index(name) for name in names if name in header}
            seen: dict[tuple[Any, ...], int] = {}
            for record in reader:
                row += 1
                if not record:
                    fault(row, None, "blank row")
                    continue
                rows += 1
                if len(record) != len(header):
                    fault(row, None, f"{len(record)} cells where the header has {len(header)}")
                values: dict[str, Any] = {}
                for field in table.fields:
                    if field.name not in where:
                        continue
                    position = where[field.name]
                    raw = record[position] if position < len(record) else ""
                    value, problem = field.check(raw, table.missing_values)
                    if problem is not None:
                        fault(row, field.name, problem)
                    elif raw not in table.missing_values:
                        values[field.name] = value
                _check_key(table, values, row, seen, fault)
    except csv.Error as exc:
        fault(row + 1, None, f"unreadable CSV: {exc}")
    except UnicodeDecodeError as exc:
        fault(None, None, f"not {table.encoding} text: {exc.reason} at byte {exc.start}")
    return rows, errors


def _check_key(
    table: Table,
    values: dict[str, Any],
    row: int,
    seen: dict[tuple[Any, ...], int],
    fault: Callable[[int | None, str | None, str], None],
) -> None:
    if not table.primary_key:
        return
    label = ", ".join(table.primary_key)
    if any(name not in values for name in table.primary_key):
        fault(row, label, "the primary key needs a value in every key field")
        return
    key = tuple(values[name] for name in table.primary_key)
    if key in seen:
        shown = ", ".join(str(value) for value in key)
        fault(row, label, f"duplicate primary key ({shown}), first at row {seen[key]}")
    else:
        seen[key] = row


def check_resource(resource: Any, base: Path, index: int) -> dict[str, Any]:
    """The report of one resource whose relative CSV path starts at directory `base`."""
    described = resource if isinstance(resource, dict) else {}
    rows, errors = 0, []
    try:
        table = read_table(resource)
    except DescriptionError as exc:
        errors = [
            Error(None, None, f"resource description: {p.pointer or '/'}: {p.reason}")
            for p in exc.problems
        ]
    else:
        csv_path = base / described["path"]
        if csv_path.is_file():
            rows, errors = check_csv(csv_path, table)
        else:
            errors = [Error(None, None, f"no such file: {described['path']}")]
    return {
        "resource": described.get("name"),
        "index": index,
        "path": described.get("path"),
        "rows": rows,
        "valid": not errors,
        "errors": [error.as_json() for error in errors],
    }


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def environ_dir(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"meta-tableschema: {name} is not set (run me as a flow step)")
    return Path(value)


def main(argv: Sequence[str] | None = None) -> int:
    """`meta-tableschema-check PACKAGE INDEX`: check the resource in META_INPUT."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: meta-tableschema-check PACKAGE INDEX", file=sys.stderr)
        return 2
    package, index = Path(args[0]), int(args[1])
    try:
        resource = json.loads(environ_dir("META_INPUT").read_text(encoding="utf-8"))
        output = environ_dir("META_OUTPUT")
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"meta-tableschema: cannot read META_INPUT: {exc}", file=sys.stderr)
        return 2
    report = check_resource(resource, package.parent, index)
    write_json(output / "report.json", report)
    state = "valid" if report["valid"] else f"{len(report['errors'])} error(s)"
    print(f"{report['resource']}: {report['rows']} row(s), {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The steps: checking one CSV against its Table Schema, and gathering the reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meta_tableschema import check, report
from meta_tableschema.check import DescriptionError, check_csv, check_resource, read_table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> dict[str, Any]:
    package = json.loads((EXAMPLES / "datapackage.json").read_text())
    (found,) = (r for r in package["resources"] if r["name"] == name)
    return dict(found)


def errors(report: dict[str, Any]) -> list[tuple[int | None, str | None, str]]:
    return [(e["row"], e["field"], e["message"]) for e in report["errors"]]


def test_the_good_example_is_valid() -> None:
    result = check_resource(example("customers"), EXAMPLES, 0)

    assert result == {
        "resource": "customers",
        "index": 0,
        "path": "data/customers.csv",
        "rows": 3,
        "valid": True,
        "errors": [],
    }


def test_the_bad_example_names_each_bad_cell() -> None:
    result = check_resource(example("orders"), EXAMPLES, 1)

    assert result["valid"] is False
    assert result["rows"] == 4
    assert errors(result) == [
        (4, "placed", "'2024-02-30' is not a date (YYYY-MM-DD)"),
        (4, "amount", "-5 is less than the minimum 0"),
        (4, "status", '\'lost\' is not one of ["open", "paid", "shipped"]'),
    ]


def table(tmp_path: Path, text: str, fields: list[dict[str, Any]], **schema: Any) -> Any:
    path = tmp_path / "data.csv"
    path.write_text(text)
    parsed = read_table({"path": "data.csv", "schema": {"fields": fields, **schema}})
    return check_csv(path, parsed)


def test_types_are_checked(tmp_path: Path) -> None:
    fields = [
        {"name": "i", "type": "integer"},
        {"name": "n", "type": "number"},
        {"name": "b", "type": "boolean"},
        {"name": "d", "type": "date"},
        {"name": "s"},
    ]
    text = "i,n,b,d,s\n1,2.5,true,2024-01-31,x\n-3,1e3,0,2024-12-01,\n1.5,abc,yes,31/01/2024,y\n"

    rows, found = table(tmp_path, text, fields)

    assert rows == 3
    assert [(e.row, e.field, e.message) for e in found] == [
        (4, "i", "'1.5' is not an integer"),
        (4, "n", "'abc' is not a number"),
        (4, "b", "'yes' is not a boolean (true or false)"),
        (4, "d", "'31/01/2024' is not a date (YYYY-MM-DD)"),
    ]


def test_constraints_are_checked(tmp_path: Path) -> None:
    fields = [
        {"name": "code", "constraints": {"required": True, "pattern": "[A-Z]{3}"}},
        {"name": "age", "type": "integer", "constraints": {"minimum": 18, "maximum": 65}},
        {"name": "since", "type": "date", "constraints": {"maximum": "2024-12-31"}},
        {"name": "size", "type": "integer", "constraints": {"enum": [1, 2, 3]}},
    ]
    text = "code,age,since,size\nABC,30,2024-01-01,2\n,17,2025-01-01,4\nabcd,66,,\n"

    rows, found = table(tmp_path, text, fields)

    assert rows == 3
    assert [(e.row, e.field, e.message) for e in found] == [
        (3, "code", "a value is required"),
        (3, "age", "17 is less than the minimum 18"),
        (3, "since", '2025-01-01 is more than the maximum "2024-12-31"'),
        (3, "size", "'4' is not one of [1, 2, 3]"),
        (4, "code", "'abcd' does not match the pattern '[A-Z]{3}'"),
        (4, "age", "66 is more than the maximum 65"),
    ]


def test_primary_keys_are_unique_and_complete(tmp_path: Path) -> None:
    fields = [{"name": "a", "type": "integer"}, {"name": "b"}]
    text = "a,b\n1,x\n1,y\n1,x\n,z\n"

    _, found = table(tmp_path, text, fields, primaryKey=["a", "b"])

    assert [(e.row, e.field, e.message) for e in found] == [
        (4, "a, b", "duplicate primary key (1, x), first at row 2"),
        (5, "a, b", "the primary key needs a value in every key field"),
    ]


def test_the_header_must_match_the_schema(tmp_path: Path) -> None:
    fields = [{"name": "a"}, {"name": "b"}]

    _, missing = table(tmp_path, "a,c\n1,2\n", fields)
    _, reordered = table(tmp_path, "b,a\n1,2\n", fields)
    _, short = table(tmp_path, "a,b\n1\n\n", fields)
    _, twice = table(tmp_path, "a,b,a\n1,2,3\n", fields)

    assert [(e.row, e.field, e.message) for e in missing] == [
        (1, "b", "column missing from the header"),
        (1, "c", "column not in the schema"),
    ]
    assert [(e.row, e.message) for e in reordered] == [
        (1, "columns ['b', 'a'] are not in the schema's order ['a', 'b']")
    ]
    assert [(e.row, e.message) for e in short] == [
        (2, "1 cells where the header has 2"),
        (3, "blank row"),
    ]
    assert [(e.row, e.field, e.message) for e in twice] == [(1, "a", "duplicate column")]


def test_missing_values_and_the_dialect_are_honoured(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a;b\nNA;'x;y'\n")
    resource = {
        "path": "data.csv",
        "dialect": {"delimiter": ";", "quoteChar": "'"},
        "schema": {
            "fields": [
                {"name": "a", "type": "integer", "constraints": {"required": True}},
                {"name": "b"},
            ],
            "missingValues": ["NA"],
        },
    }

    rows, found = check_csv(path, read_table(resource))

    assert rows == 1
    assert [(e.row, e.field, e.message) for e in found] == [(2, "a", "a value is required")]


def test_an_empty_file_and_a_missing_file_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    described = {"name": "r", "schema": {"fields": [{"name": "a"}]}}

    empty = check_resource({**described, "path": "empty.csv"}, tmp_path, 0)
    missing = check_resource({**described, "path": "gone.csv"}, tmp_path, 1)

    assert errors(empty) == [(None, None, "the file is empty (no header row)")]
    assert errors(missing) == [(None, None, "no such file: gone.csv")]
    assert empty["valid"] is missing["valid"] is False


def test_an_unusable_description_lists_every_problem() -> None:
    with pytest.raises(DescriptionError) as caught:
        read_table({"data": [], "schema": {"fields": [{"name": "a", "type": "any"}, {}]}})

    assert [(p.pointer, p.reason.split(" (")[0]) for p in caught.value.problems] == [
        ("/data", "inline data is not supported; give a CSV `path`"),
        ("/path", "a resource needs a `path` to its CSV file"),
        ("/schema/fields/0/type", "type 'any' is not supported"),
        ("/schema/fields/1/name", "a field needs a name"),
    ]


def test_the_step_reads_meta_input_and_writes_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    given = tmp_path / "input.json"
    given.write_text(json.dumps(example("orders")))
    output = tmp_path / "out"
    output.mkdir()
    monkeypatch.setenv("META_INPUT", str(given))
    monkeypatch.setenv("META_OUTPUT", str(output))

    code = check.main([str(EXAMPLES / "datapackage.json"), "1"])

    assert code == 0
    written = json.loads((output / "report.json").read_text())
    assert written == check_resource(example("orders"), EXAMPLES, 1)
    assert capsys.readouterr().out == "orders: 4 row(s), 3 error(s)\n"


def test_the_step_refuses_to_run_outside_a_flow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("META_INPUT", raising=False)

    assert check.main(["datapackage.json", "0"]) == 2
    assert check.main(["datapackage.json"]) == 2
    assert "META_INPUT is not set" in capsys.readouterr().err


def test_the_gather_orders_the_reports_as_the_package_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream, output = tmp_path / "upstream", tmp_path / "out"
    output.mkdir()
    for index, name in [(1, "orders"), (0, "customers")]:
        (upstream / f"check-{name}").mkdir(parents=True)
        check.write_json(
            upstream / f"check-{name}" / "report.json",
            check_resource(example(name), EXAMPLES, index),
        )
    monkeypatch.setenv("META_UPSTREAM", str(upstream))
    monkeypatch.setenv("META_OUTPUT", str(output))

    assert report.main([str(EXAMPLES / "datapackage.json")]) == 0

    summary = json.loads((output / "report.json").read_text())
    assert summary["package"] == "corner-shop"
    assert summary["valid"] is False
    assert summary["rows"] == 7
    assert summary["errorCount"] == 3
    assert [r["resource"] for r in summary["resources"]] == ["customers", "orders"]


@pytest.mark.parametrize(
    ("resource", "pointer", "reason"),
    [
        ({"path": "../x.csv"}, "/path", "'../x.csv' is not a relative path inside the package"),
        ({"path": "https://x/y.csv"}, "/path", "'https://x/y.csv' is not a relative path"),
        ({"format": "xlsx"}, "/format", "format 'xlsx' is not supported (csv)"),
        ({"encoding": "nope"}, "/encoding", "unknown encoding 'nope'"),
        ({"dialect": {"header": False}}, "/dialect/header", "dialect option 'header' is not"),
        (
            {"schema": {"fields": [{"name": "a"}, {"name": "a"}]}},
            "/schema/fields/1/name",
            "duplicate field 'a'",
        ),
        (
            {"schema": {"fields": [{"name": "a", "constraints": {"pattern": "("}}]}},
            "/schema/fields/0/constraints/pattern",
            "not a regular expression",
        ),
        (
            {
                "schema": {
                    "fields": [{"name": "a", "type": "integer", "constraints": {"enum": ["x"]}}]
                }
            },
            "/schema/fields/0/constraints/enum",
            "'x' is not an integer",
        ),
    ],
)
def test_each_unsupported_description_is_named(
    resource: dict[str, Any], pointer: str, reason: str
) -> None:
    described = {"path": "x.csv", "schema": {"fields": [{"name": "a"}]}, **resource}

    problems = check.resource_problems(described)

    assert [p.pointer for p in problems] == [pointer]
    assert problems[0].reason.startswith(reason)


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    fields = [{"name": "version", "type": "integer"}, {"name": "name"}]
    rows, found = table(tmp_path, "\ufeffversion,name\n1,a\n", fields)
    assert (rows, found) == (1, [])

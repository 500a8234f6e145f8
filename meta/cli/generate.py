"""The commands that turn descriptions into flows: generate, watch, plugins (the built-in step
programs generated flows run are `meta.cli.step`'s)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from meta.cli.common import EXIT_USER_ERROR, Place, user_errors, write_output
from meta.cli.watch import DEFAULT_TIME_LIMIT, Watcher, WatchEvent
from meta.errors import Fault, UserError, escaped
from meta.flow.files import display_path
from meta.flow.model import FileInput
from meta.generate.explain import explain as explain_description
from meta.generate.pipeline import generate as generate_flow
from meta.generate.pipeline import read_description
from meta.generate.plugins import load_plugins
from meta.generate.worker import companions
from meta.hookspecs import Description
from meta.local.reportpath import check_output_path
from meta.plan.inputs import is_json_lines, read_json


@click.command()
@click.argument("description", type=Place(path_type=Path))
@click.option("--data", type=Place(path_type=Path), help="The data file the flow reads.")
@click.option("--generator", "generator", metavar="NAME", help="Use this generator.")
@click.option(
    "-o",
    "--output",
    type=Place(path_type=Path),
    help="Write the flow here [default: standard output].",
)
@click.option(
    "--schema-root",
    type=Place(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Read the files a schema's $refs name anywhere under DIR, a folder holding the schema "
    "[default: the schema's own folder]. Nothing is ever fetched.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Print what the generators saw and why each scores what it does, instead of the flow "
    "(exit 2 when none fits).",
)
@user_errors
def generate(
    description: Path,
    data: Path | None,
    generator: str | None,
    output: Path | None,
    schema_root: Path | None,
    explain: bool,
) -> None:
    """Turn a data description (a JSON Schema, or any format a plugin reads) into a flow."""
    if data is not None and not data.is_file():
        # Some generators only name the file in the flow: a typo would show at run time only.
        reason = "no such file" if not data.exists() else "not a regular file"
        raise UserError(Fault(display_path(data), "", f"{reason} (--data names the data file)"))
    if data is not None and not is_json_lines(data):
        # So is a file the run cannot read (UTF-16, NaN, not JSON or YAML at all): said now.
        read_json(data)
    if output is not None:
        given = [description, *([data] if data is not None else [])]
        _check_output(output, [*given, *companions(description)])
    flow_dir = output.parent if output is not None else Path.cwd()
    described = read_description(description, data=data, flow_dir=flow_dir, schema_root=schema_root)
    if explain:
        _explain(described)
        return
    generated = generate_flow(
        load_plugins(),
        described,
        generator=generator,
        flow_path=output or Path.cwd() / "generated.flow.yaml",
    )
    text = generated.yaml()
    if output is None:
        click.echo(text, nl=False)
    else:
        # A generator names the files its flow reads as it likes (a plugin's own, or the data
        # file beside the schema when no --data is given): known only now.
        read = [spec.path for spec in generated.flow.inputs.values() if isinstance(spec, FileInput)]
        _check_output(output, read)
        write_output(output, text)
        click.echo(
            f"{display_path(output)}: flow '{generated.flow.name}' by generator "
            f"'{generated.generator}'",
            err=True,
        )


def _check_output(output: Path, made_from: Sequence[Path]) -> None:
    check_output_path(output, "the flow", made_from, "the description or data it is made from")


def _explain(described: Description) -> None:
    explanation = explain_description(load_plugins(), described)
    for line in explanation.lines():
        click.echo(line)
    if explanation.chosen is None:
        sys.exit(EXIT_USER_ERROR)


@click.command()
@click.argument("folder", type=Place(path_type=Path, file_okay=False, exists=True))
@click.option("--run", "run_flows", is_flag=True, help="Also run each flow into FOLDER/runs/NAME/.")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIME_LIMIT,
    show_default=True,
    metavar="SECONDS",
    help="Stop generating one description after this long (NAME.error.txt says so).",
)
@user_errors
def watch(folder: Path, run_flows: bool, time_limit: float) -> None:
    """Watch FOLDER: dropping NAME.schema.json (or .schema.yaml, with an optional NAME.data.json
    or .data.yaml) writes NAME.flow.yaml. Each description is generated in a worker of its own,
    so a slow one holds up no other."""
    watcher = Watcher(folder, run=run_flows, time_limit=time_limit)
    click.echo(f"watching {display_path(watcher.folder)} (Ctrl-C to stop)", err=True)
    try:
        watcher.watch(_tell)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _tell(event: WatchEvent) -> None:
    # Names come from files anyone may drop into the folder: one line each, escaped.
    name = escaped(event.name)
    if event.flow is not None:
        flow = escaped(display_path(event.flow))
        click.echo(f"{name}: wrote {flow} (generator {event.generator})")
    refused = "its run cannot start" if event.flow is not None else "refused"
    if event.error is not None:
        click.echo(f"{name}: {refused}, see {escaped(display_path(event.error))}")
    for fault in event.faults:
        click.echo(f"{name}: {refused}: {escaped(fault)}")
    if event.run is not None:
        made = event.run.report_path
        report = f", report {escaped(str(made))}" if made is not None else ""
        click.echo(f"{name}: run {event.run.state}{report}")


@click.command()
@user_errors
def plugins() -> None:
    """List the generators and where each comes from."""
    loaded = load_plugins()
    for registered in loaded.catalogue:
        click.echo(f"{registered.generator.name}\t{registered.source}")

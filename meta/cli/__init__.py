"""The `meta` command: a thin shell over the library that prints one clear line per fault.

Exit codes: 0 success, 1 a unit failed, 2 a user error (nothing run), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from meta.cli.watch import Watcher, WatchEvent
from meta.engine.records import Listener
from meta.errors import Fault, MetaError, UserError
from meta.flow.files import display_path
from meta.generate.pipeline import generate as generate_flow
from meta.generate.pipeline import read_description
from meta.generate.plugins import load_plugins
from meta.kube.crd import crd_yaml
from meta.kube.ratelimit import DEFAULT_BURST, DEFAULT_QPS
from meta.kube.types import DEFAULT_IMAGE
from meta.local.report import write_text
from meta.local.runner import Outcome, resume_run, start_run
from meta.plan.describe import describe
from meta.plan.graph import flow_graph, to_dot, to_mermaid
from meta.plan.plan import compile_plan
from meta.steps import validate_node

EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meta-orchestrator")
def main() -> None:
    """meta-orchestrator: data describes the pipeline."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@user_errors
def validate(files: Sequence[Path]) -> None:
    """Check flow files (and the flows and inputs they name); exit 2 listing every fault."""
    faults: list[Fault] = []
    for file in files:
        try:
            compile_plan(file)
        except UserError as exc:
            faults.extend(exc.faults)
        else:
            click.echo(f"{display_path(file)}: valid")
    if faults:
        raise UserError(faults)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@user_errors
def plan(file: Path) -> None:
    """Describe a flow: its sections, patterns and bounds, in words."""
    for line in describe(compile_plan(file)):
        click.echo(line)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@user_errors
def graph(file: Path, fmt: str) -> None:
    """Print the flow's structure as Mermaid or Graphviz DOT source."""
    built = flow_graph(compile_plan(file))
    click.echo(to_mermaid(built) if fmt == "mermaid" else to_dot(built), nl=False)


@main.command()
@click.argument("description", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help="The data file the flow reads.")
@click.option("--generator", "generator", metavar="NAME", help="Use this generator.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the flow here [default: standard output].",
)
@user_errors
def generate(
    description: Path, data: Path | None, generator: str | None, output: Path | None
) -> None:
    """Turn a data description (a JSON Schema, or any format a plugin reads) into a flow."""
    flow_dir = output.parent if output is not None else Path.cwd()
    described = read_description(description, data=data, flow_dir=flow_dir)
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
        _write(output, text)
        click.echo(
            f"{display_path(output)}: flow '{generated.flow.name}' by generator "
            f"'{generated.generator}'",
            err=True,
        )


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--run", "run_flows", is_flag=True, help="Also run each flow into FOLDER/runs/NAME/.")
@user_errors
def watch(folder: Path, run_flows: bool) -> None:
    """Watch FOLDER: dropping NAME.schema.json (and NAME.data.json) writes NAME.flow.yaml."""
    watcher = Watcher(folder, run=run_flows)
    click.echo(f"watching {display_path(watcher.folder)} (Ctrl-C to stop)", err=True)
    try:
        watcher.watch(_tell)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _tell(event: WatchEvent) -> None:
    if event.error is not None:
        click.echo(f"{event.name}: refused, see {display_path(event.error)}")
    elif event.flow is not None:
        click.echo(f"{event.name}: wrote {display_path(event.flow)} (generator {event.generator})")
    if event.run is not None:
        click.echo(f"{event.name}: run {event.run.state}, report {event.run.report_path}")


def _write(output: Path, text: str) -> None:
    try:
        write_text(output, text)
    except OSError as exc:
        raise UserError(Fault(display_path(output), "", f"cannot write: {exc}")) from None


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the CRD here [default: standard output].",
)
@user_errors
def crd(output: Path | None) -> None:
    """Print the MetaFlow CustomResourceDefinition, derived from the flow language's schema."""
    text = crd_yaml()
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text)


def _kube(kubeconfig: Path | None, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> Any:
    from meta.kube.api import ClientApi
    from meta.kube.ratelimit import RateLimit

    return ClientApi.from_environment(
        str(kubeconfig) if kubeconfig else None, RateLimit(qps, burst)
    )


KUBECONFIG = click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The cluster to use [default: in-cluster, else $KUBECONFIG or ~/.kube/config].",
)
NAMESPACE = click.option("-n", "--namespace", default="default", show_default=True)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@NAMESPACE
@KUBECONFIG
@user_errors
def apply(file: Path, namespace: str, kubeconfig: Path | None) -> None:
    """Validate a flow file and create (or update) it as a MetaFlow in the cluster."""
    from meta.kube.apply import apply_flow, flow_resource

    body = flow_resource(compile_plan(file), namespace)
    api = _kube(kubeconfig)
    try:
        outcome = asyncio.run(apply_flow(api, body))
    finally:
        api.close()
    click.echo(f"metaflow {namespace}/{body['metadata']['name']} {outcome}")


@main.command()
@click.argument("name")
@NAMESPACE
@KUBECONFIG
@user_errors
def status(name: str, namespace: str, kubeconfig: Path | None) -> None:
    """Show a MetaFlow's phase, progress, conditions and sections."""
    from meta.kube.api import NotFound
    from meta.kube.apply import describe_status

    api = _kube(kubeconfig)
    try:
        resource = asyncio.run(api.get_flow(namespace, name))
    except NotFound:
        raise UserError(Fault(f"metaflow {namespace}/{name}", "", "no such MetaFlow")) from None
    finally:
        api.close()
    for line in describe_status(resource):
        click.echo(line)


@main.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch this namespace (repeatable) [default: all namespaces].",
)
@KUBECONFIG
@click.option(
    "--qps",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_QPS,
    show_default=True,
    help="Client-side rate limit on API calls, per second.",
)
@click.option("--burst", type=click.IntRange(min=1), default=DEFAULT_BURST, show_default=True)
@click.option(
    "--image", default=DEFAULT_IMAGE, show_default=True, help="The image of steps that name none."
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default="IfNotPresent",
    show_default=True,
)
@click.option(
    "--store-claim",
    metavar="PVC",
    help="The PersistentVolumeClaim holding the store [default: none, outputs stay in each pod].",
)
@click.option(
    "--store-dir",
    default="/store",
    show_default=True,
    help="Where this process sees the store volume.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="File inputs of MetaFlows are read relative to this.",
)
@click.option("--node-name", metavar="NODE", help="Place every pod on this node (no scheduler).")
@click.option(
    "--node-selector",
    "node_selectors",
    multiple=True,
    metavar="KEY=VALUE",
    help="Schedule pods only on nodes with this label (repeatable).",
)
@click.option(
    "--toleration",
    "tolerations",
    multiple=True,
    metavar="KEY[=VALUE]:EFFECT",
    help="Add this toleration to every pod (repeatable).",
)
@click.option(
    "--pod-api-server",
    metavar="HOST:PORT",
    help="Where micro pods' quarterbacks reach the API server, when the cluster's `kubernetes` "
    "service does not lead there (no kube-proxy) [default: that service].",
)
@user_errors
def operator(
    namespaces: Sequence[str],
    kubeconfig: Path | None,
    qps: float,
    burst: int,
    image: str,
    image_pull_policy: str,
    store_claim: str | None,
    store_dir: str,
    data_dir: Path,
    node_name: str | None,
    node_selectors: Sequence[str],
    tolerations: Sequence[str],
    pod_api_server: str | None,
) -> None:
    """Run the MetaFlow operator: reconcile MetaFlows in the cluster until stopped."""
    from meta.kube.operator import run_operator
    from meta.kube.types import OperatorSettings, PodSettings

    pods = PodSettings(
        default_image=image,
        image_pull_policy=image_pull_policy,
        store_claim=store_claim,
        node_name=node_name,
        node_selector=dict(_label(s) for s in node_selectors),
        tolerations=[_toleration(t) for t in tolerations],
        api_server=_host_port(pod_api_server) if pod_api_server else None,
    )
    # Absolute: pods mount the flow's files at the very path the operator reads them from.
    settings = OperatorSettings(
        pods=pods, store_dir=os.path.abspath(store_dir), data_dir=data_dir.resolve()
    )
    run_operator(_kube(kubeconfig, qps, burst), settings, namespaces)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE", param_hint="--node-selector")
    return key, value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r}: expected HOST:PORT", param_hint="--pod-api-server")
    return host.strip("[]"), int(port)


def _toleration(text: str) -> dict[str, str]:
    spec, sep, effect = text.rpartition(":")
    key, has_value, value = spec.partition("=")
    if not sep or not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise click.BadParameter(
            f"{text!r}: expected KEY[=VALUE]:EFFECT", param_hint="--toleration"
        )
    if has_value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


@main.group("quarterback")
def quarterback_group() -> None:
    """The sidecar of micro pods (it runs inside the cluster, started by the operator)."""


@quarterback_group.command("run")
@click.option("--work", "work_dir", required=True, type=click.Path(file_okay=False))
def quarterback_run(work_dir: str) -> None:
    """Run the micro section handed over in WORK (its pod's work ConfigMap)."""
    from meta.kube.quarterback import quarterback

    sys.exit(quarterback(work_dir))


@quarterback_group.command("install-launcher")
@click.argument("directory", type=click.Path(file_okay=False))
def quarterback_install_launcher(directory: str) -> None:
    """Copy the slot launcher into DIRECTORY (the micro pod's init container does this)."""
    from meta.kube.quarterback import install_launcher

    click.echo(install_launcher(directory))


@main.group()
def step() -> None:
    """Built-in step programs, for generated flows (they run inside steps)."""


@step.command(
    "validate-node",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def validate_node_step(args: Sequence[str]) -> None:
    """Validate META_INPUT against its type's schema; write META_OUTPUT/report.json."""
    sys.exit(validate_node.main(list(args)))


@main.command()
@user_errors
def plugins() -> None:
    """List the generators and where each comes from."""
    loaded = load_plugins()
    for registered in loaded.catalogue:
        click.echo(f"{registered.generator.name}\t{registered.source}")


def _parse_sets(values: Sequence[str]) -> dict[str, Path]:
    overrides: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected INPUT=PATH", param_hint="--set")
        overrides[name] = Path(path)
    return overrides


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the run keeps its journal, outputs and logs [default: runs/FLOW-TIME].",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the JSON report here.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="INPUT=PATH",
    help="Read an input from another file (repeatable).",
)
@user_errors
def run(file: Path, workdir: Path | None, report: Path | None, sets: Sequence[str]) -> None:
    """Run a flow locally, as real processes."""
    overrides = _parse_sets(sets)
    _finish(lambda listeners: start_run(file, workdir, overrides, listeners, report), file.name)


@main.command()
@click.argument("workdir", type=click.Path(path_type=Path))
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the JSON report here.",
)
@user_errors
def resume(workdir: Path, report: Path | None) -> None:
    """Finish an interrupted run; units that finished are not run again."""
    _finish(lambda listeners: resume_run(workdir, listeners, report), str(workdir))


def _finish(execute: Callable[[Sequence[Listener]], Outcome], title: str) -> None:
    console = Console(stderr=True)
    listeners: list[Listener] = []
    display: AbstractContextManager[Any] = nullcontext()
    if console.is_terminal:
        from meta.cli.progress import LiveProgress

        live = LiveProgress(console, title)
        listeners.append(live)
        display = live
    with display:
        outcome = execute(listeners)
    _summarise(outcome)


def _summarise(outcome: Outcome) -> None:
    report = outcome.report
    units = report["units"]
    ran = sum(1 for u in units if u["state"] == "succeeded" and not u.get("resumed"))
    resumed = sum(1 for u in units if u.get("resumed"))
    again = f", {resumed} finished before" if resumed else ""
    click.echo(f"{report['flow']}: {outcome.state} ({ran} units run{again})")
    if outcome.state == "succeeded":
        click.echo(f"outputs: {report['outputs'] or '(none written)'}")
    click.echo(f"report: {outcome.report_path}")
    if outcome.error is not None:
        if isinstance(outcome.error, UserError):
            for fault in outcome.error.faults:
                click.echo(str(fault), err=True)
            sys.exit(EXIT_USER_ERROR)
        click.echo(f"error: {outcome.error}", err=True)
        tail = report.get("error", {}).get("stderrTail")
        if tail:
            click.echo("stderr (tail):", err=True)
            click.echo("\n".join("  " + line for line in tail.splitlines()[-20:]), err=True)
        sys.exit(EXIT_FAILED)
    if outcome.state == "cancelled":
        click.echo("interrupted: `meta resume` the workdir to finish", err=True)
        sys.exit(EXIT_INTERRUPTED)

"""The cluster's commands: crd, apply, operator and the quarterback's own. The
Kubernetes layer is imported inside each command, so the local commands start without it.
(`meta status` and `meta logs`, which read local runs too, are in `runs`.)"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from meta.cli.common import SETS, Place, user_errors, write_output
from meta.kube.crd import crd_yaml, schema_crd_yaml
from meta.kube.ratelimit import DEFAULT_BURST, DEFAULT_QPS
from meta.kube.types import DEFAULT_IMAGE, RUN_AS_USER
from meta.plan.plan import compile_plan


@click.command()
@click.option(
    "-o",
    "--output",
    type=Place(path_type=Path),
    help="Write the CRD here [default: standard output].",
)
@click.option(
    "--kind",
    type=click.Choice(["MetaFlow", "MetaSchema"]),
    default="MetaFlow",
    show_default=True,
    help="Which of the two CRDs.",
)
@user_errors
def crd(output: Path | None, kind: str) -> None:
    """Print the MetaFlow CustomResourceDefinition, derived from the flow language's schema
    (or, with --kind MetaSchema, the small CRD of data descriptions dropped into the cluster)."""
    text = crd_yaml() if kind == "MetaFlow" else schema_crd_yaml()
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(output, text)


def kube_api(kubeconfig: Path | None, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> Any:
    from meta.kube.api import ClientApi
    from meta.kube.ratelimit import RateLimit

    return ClientApi.from_environment(
        str(kubeconfig) if kubeconfig else None, RateLimit(qps, burst)
    )


KUBECONFIG = click.option(
    "--kubeconfig",
    type=Place(path_type=Path, dir_okay=False, exists=True),
    help="The cluster to use [default: in-cluster, else $KUBECONFIG or ~/.kube/config].",
)
NAMESPACE = click.option("-n", "--namespace", default="default", show_default=True)


@click.command()
@click.argument("file", type=Place(path_type=Path))
@NAMESPACE
@KUBECONFIG
@SETS
@click.option(
    "--data",
    type=Place(path_type=Path, dir_okay=False),
    help="A schema's data (JSON or YAML), carried inline by the MetaSchema.",
)
@click.option(
    "--data-path", metavar="PATH", help="Or: a schema's data file, by its path on the store."
)
@click.option(
    "--overlay",
    type=Place(path_type=Path, dir_okay=False),
    help="A schema's x-meta overlay [default: NAME.meta.yaml beside NAME.schema.json].",
)
@click.option("--generator", metavar="NAME", help="Have the operator use this generator.")
@click.option("--name", metavar="NAME", help="The MetaSchema's name [default: the file's].")
@user_errors
def apply(
    file: Path,
    namespace: str,
    kubeconfig: Path | None,
    sets: Sequence[str],
    data: Path | None,
    data_path: str | None,
    overlay: Path | None,
    generator: str | None,
    name: str | None,
) -> None:
    """Validate a flow file and create (or update) it as a MetaFlow in the cluster; or, given a
    data description (NAME.schema.json, or any JSON Schema file), create (or update) a
    MetaSchema, from which the operator generates a MetaFlow and runs it."""
    from meta.errors import Fault, UserError
    from meta.flow.files import display_path
    from meta.kube.apply import (
        apply_flow,
        apply_schema,
        flow_resource,
        is_schema_file,
        schema_resource,
    )
    from meta.plan.given import parse_sets

    schema_options = {
        "--data": data, "--data-path": data_path, "--overlay": overlay,
        "--generator": generator, "--name": name,
    }  # fmt: skip
    if is_schema_file(file):
        if sets:
            reason = "a data description takes no --set (its flow is generated in the cluster)"
            raise UserError(Fault(display_path(file), "", reason))
        body = schema_resource(
            file, namespace, data=data, data_path=data_path, overlay=overlay,
            generator=generator, name=name,
        )  # fmt: skip
        kind, applying = "metaschema", apply_schema
    else:
        given = [option for option, value in schema_options.items() if value is not None]
        if given:
            reason = f"{', '.join(given)}: for a data description; this is a flow file"
            raise UserError(Fault(display_path(file), "", reason))
        body = flow_resource(compile_plan(file, parse_sets(sets)), namespace)
        kind, applying = "metaflow", apply_flow
    api = kube_api(kubeconfig)
    try:
        outcome = asyncio.run(applying(api, body))
    finally:
        api.close()
    click.echo(f"{kind} {namespace}/{body['metadata']['name']} {outcome}")


@click.command()
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
    "--compact-journal/--keep-journal",
    default=None,
    help="After a flow ends, move its journal from ConfigMaps into a file of the store "
    "[default: when --store-claim is given: the store must outlive the operator].",
)
@click.option(
    "--data-dir",
    type=Place(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="File inputs of MetaFlows are read relative to this.",
)
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
    "--leader-elect",
    is_flag=True,
    help="Run as one of several replicas: only the holder of a Lease runs flows; the others "
    "stand by and take over when it stops or stops renewing it.",
)
@click.option(
    "--lease-namespace",
    metavar="NAMESPACE",
    help="The Lease's namespace [default: this pod's, else `default`].",
)
@click.option(
    "--lease-name", default="meta-orchestrator-operator", show_default=True, metavar="NAME"
)
@click.option(
    "--run-as-user",
    type=click.IntRange(min=0),
    default=RUN_AS_USER,
    show_default=True,
    metavar="UID",
    help="The uid, gid and fsGroup of every container of every pod (0, root, only where the "
    "namespace allows it: the restricted Pod Security Standard refuses it).",
)
@click.option(
    "--writable-step-root",
    is_flag=True,
    help="Give steps a writable root file system [default: read-only; /tmp, /scratch and "
    "META_OUTPUT stay writable].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=9090,
    show_default=True,
    help="Serve Prometheus metrics on this port at /metrics (0: not at all).",
)
@click.option(
    "--health-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Answer liveness probes on this port at /healthz (0: not at all).",
)
@click.option(
    "--generate-time-limit",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop generating the flow of one MetaSchema after this long (it is refused).",
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
    compact_journal: bool | None,
    data_dir: Path,
    node_selectors: Sequence[str],
    tolerations: Sequence[str],
    leader_elect: bool,
    lease_namespace: str | None,
    lease_name: str,
    run_as_user: int,
    writable_step_root: bool,
    metrics_port: int,
    health_port: int,
    generate_time_limit: float,
) -> None:
    """Run the MetaFlow operator: reconcile MetaFlows (and generate the MetaFlows of MetaSchemas)
    in the cluster until stopped."""
    from meta.kube import metrics
    from meta.kube.lease import LeaseSettings, own_namespace
    from meta.kube.operator import LeadershipLost, run_operator
    from meta.kube.types import OperatorSettings, PodSettings

    selectors, placed = placement(node_selectors, tolerations)
    pods = PodSettings(
        default_image=image,
        image_pull_policy=image_pull_policy,
        store_claim=store_claim,
        node_selector=selectors,
        tolerations=placed,
        run_as_user=run_as_user,
        read_only_root=not writable_step_root,
    )
    # Absolute: pods mount the flow's files at the very path the operator reads them from.
    settings = OperatorSettings(
        pods=pods,
        store_dir=os.path.abspath(store_dir),
        data_dir=data_dir.resolve(),
        generate_seconds=generate_time_limit,
        compact_journal=store_claim is not None if compact_journal is None else compact_journal,
    )
    # meta's own messages (the Lease's hand-overs, the journal's) beside kopf's, in the log.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("meta").addHandler(handler)
    logging.getLogger("meta").setLevel(logging.INFO)
    lease = None
    if leader_elect:
        lease = LeaseSettings(namespace=lease_namespace or own_namespace(), name=lease_name)
    try:
        metrics.serve(metrics_port)
    except OSError as exc:
        raise click.BadParameter(f"cannot listen on {metrics_port}: {exc}") from None
    api = kube_api(kubeconfig, qps, burst)
    try:
        run_operator(api, settings, namespaces, lease=lease, health_port=health_port)
    except LeadershipLost as exc:
        # Another replica may hold it by now: stop before writing anything more.
        click.echo(f"meta operator: {exc}; stopping", err=True)
        sys.exit(1)


def placement(
    node_selectors: Sequence[str], tolerations: Sequence[str]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The `--node-selector` and `--toleration` options, read."""
    return dict(_label(s) for s in node_selectors), [_toleration(t) for t in tolerations]


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE", param_hint="--node-selector")
    return key, value


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


@click.group("quarterback")
def quarterback_group() -> None:
    """The sidecar of micro pods (it runs inside the cluster, started by the operator)."""


@quarterback_group.command("run")
@click.option("--work", "work_dir", required=True, type=Place(file_okay=False))
def quarterback_run(work_dir: str) -> None:
    """Run the micro section handed over in WORK (its pod's work ConfigMap)."""
    from meta.kube.quarterback import quarterback

    sys.exit(quarterback(work_dir))


@quarterback_group.command("install-launcher")
@click.argument("directory", type=Place(file_okay=False))
def quarterback_install_launcher(directory: str) -> None:
    """Copy the slot launcher into DIRECTORY (the micro pod's init container does this)."""
    from meta.kube.quarterback import install_launcher

    click.echo(install_launcher(directory))

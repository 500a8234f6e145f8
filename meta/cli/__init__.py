"""The `meta` command: a thin shell over the library that prints one clear line per fault.

Exit codes: 0 success, 1 a unit failed, 2 a user error (nothing run), 130 interrupted. One
module per group of commands: `local` (validate, plan, graph, run, resume), `generate`
(generate, watch, plugins, step), `kube` (crd, apply, operator, quarterback) and `runs` (runs,
status, logs, clean: seeing runs, local and in a cluster).
"""

from __future__ import annotations

import click

from meta.cli import generate, kube, local, runs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meta-orchestrator")
def main() -> None:
    """meta-orchestrator: data describes the pipeline."""


for command in (
    local.validate,
    local.plan,
    local.graph,
    generate.generate,
    generate.watch,
    kube.crd,
    kube.apply,
    kube.operator,
    kube.quarterback_group,
    generate.step,
    generate.plugins,
    local.run,
    local.resume,
    runs.runs,
    runs.status,
    runs.logs,
    runs.clean,
):
    main.add_command(command)

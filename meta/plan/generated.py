"""Plans for flows generated at run time by `generate` units."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import Plugins
from meta.plan.plan import Plan, plan_flow


def generate_plan(
    description: Path,
    data: Path | None,
    generator: str | None,
    plugins: Callable[[], Plugins],
) -> Plan:
    """Generate a flow from `description` and plan it. The flow is taken to live beside its
    description, so the paths it names (data, scripts) start from there."""
    described = read_description(description, data=data, flow_dir=description.parent)
    flow_path = description.parent / f"{description.stem}.generated.flow.yaml"
    generated = generate(plugins(), described, flow_path=flow_path, generator=generator)
    return plan_flow(generated.flow)

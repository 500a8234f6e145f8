"""From a description to a written flow: choose a generator, generate, transform, validate, dump."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meta.errors import Fault, FlowInvalid, UserError
from meta.flow.dump import dump_flow
from meta.flow.files import display_path, parse_json, parse_yaml_data, read_text
from meta.flow.model import Flow
from meta.flow.parse import flow_from_document
from meta.generate.explain import explain, reason
from meta.generate.plugins import Plugins, Registered
from meta.hookspecs import Description


@dataclass(frozen=True)
class Generated:
    document: dict[str, Any]
    generator: str
    flow: Flow

    def yaml(self) -> str:
        return dump_flow(self.document)


def read_description(
    path: Path, *, data: Path | None = None, flow_dir: Path | None = None
) -> Description:
    """Read a description; JSON and YAML are parsed, other formats are left to the plugins."""
    file = display_path(path)
    text = read_text(path)
    document: Any = None
    if path.suffix.lower() == ".json":
        document = parse_json(text, file)
    elif path.suffix.lower() in (".yaml", ".yml"):
        document = parse_yaml_data(text, file)
    return Description(
        path=path.resolve(), document=document, data=data, flow_dir=flow_dir or path.parent
    )


def choose(plugins: Plugins, description: Description, name: str | None = None) -> Registered:
    """The generator named `name`, or the one that scores `description` highest."""
    file = display_path(description.path)
    if name is not None:
        chosen = plugins.catalogue.get(name)
        if chosen is None:
            known = ", ".join(plugins.catalogue.names()) or "none"
            raise UserError(Fault(file, "", f"no generator named '{name}' (known: {known})"))
        if chosen.generator.score(description) <= 0:
            why = reason(chosen.generator, description)
            raise UserError(
                Fault(file, "", f"generator '{name}' does not understand this description: {why}")
            )
        return chosen
    scored = [
        (registered.generator.score(description), registered) for registered in plugins.catalogue
    ]
    best = max((score for score, _ in scored), default=0.0)
    if best <= 0:
        known = ", ".join(plugins.catalogue.names()) or "none"
        why = explain(plugins, description).summary()
        raise UserError(
            Fault(
                file, "", f"no generator understands this description (generators: {known}): {why}"
            )
        )
    top = [registered for score, registered in scored if score == best]
    if len(top) > 1:
        names = ", ".join(r.generator.name for r in top)
        raise UserError(
            Fault(
                file, "", f"generators tie at score {best:g}: {names}; choose one with --generator"
            )
        )
    winner: Registered = top[0]
    return winner


def generate(
    plugins: Plugins, description: Description, *, flow_path: Path, generator: str | None = None
) -> Generated:
    """Generate, transform and validate the flow for `description`, said to live at `flow_path`."""
    chosen = choose(plugins, description, generator)
    name = chosen.generator.name
    document = chosen.generator.generate(description)
    for impl in _in_order(plugins.manager.hook.meta_transform_flow.get_hookimpls()):
        # As pluggy does: an implementation takes any subset of the spec's arguments.
        offered = {"flow": document, "description": description, "generator": name}
        changed = impl.function(*(offered[arg] for arg in impl.argnames))
        if changed is not None:
            document = changed
    try:
        flow = flow_from_document(document, flow_path.resolve())
    except FlowInvalid as exc:
        faults = [
            Fault(f.file, f.pointer, f"generator '{name}' produced an invalid flow: {f.reason}")
            for f in exc.faults
        ]
        raise FlowInvalid(faults) from None
    return Generated(document, name, flow)


def _in_order(impls: list[Any]) -> list[Any]:
    first = [impl for impl in impls if impl.tryfirst]
    # pluggy keeps trylast impls newest first; reverse them back into registration order.
    last = [impl for impl in reversed(impls) if impl.trylast]
    middle = [impl for impl in impls if not impl.tryfirst and not impl.trylast]
    return [*first, *middle, *last]

"""`generate` units: the description (and data) found where the unit says (a file input, or a
file an upstream unit left), the generator plugins run on it, and the flow they return planned,
within the flow's bound on how deep generated flows nest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from meta.engine.visit import Visit
from meta.errors import Fault, LimitExceeded, UserError
from meta.flow.model import FileInput, Generate, UnitSource
from meta.plan.plan import Plan

if TYPE_CHECKING:
    from meta.generate.plugins import Plugins

# The generators' pipeline and plugin manager (importlib.metadata, pluggy, the pipeline) are
# imported by the first generate unit: a run without one never needs them.


class Generation:
    def __init__(
        self, root: Plan, outputs: Callable[[str], str], plugins: Plugins | None = None
    ) -> None:
        self._limits = root.flow.limits
        self._outputs = outputs
        """Where a finished unit's outputs are (the driver's word)."""
        self._plugins = plugins
        """The generators; loaded from entry points when first needed."""

    async def plan(self, visit: Visit, unit: Generate) -> tuple[Plan, tuple[str, ...]]:
        """The generated flow's plan, and the chain of generate units it is generated under."""
        chain = (*visit.frame.chain, visit.uid)
        if len(chain) > self._limits.max_depth:
            raise LimitExceeded(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer,
                    f"generated flows nest deeper than spec.limits.maxDepth "
                    f"({self._limits.max_depth}): {' -> '.join(chain)}",
                )
            )
        description = self._source_file(visit, unit, "description", unit.description)
        data = None
        if unit.data is not None:
            data = self._source_file(visit, unit, "data", unit.data)
        from meta.plan.generated import generate_plan

        try:
            plan = await asyncio.to_thread(
                generate_plan, description, data, unit.generator, self._load_plugins
            )
        except UserError as exc:
            # The faults name the description (or the flow made of it); say which unit asked.
            raise type(exc)(
                Fault(f.file, f.pointer, f"{f.reason} (generate unit {visit.uid})")
                for f in exc.faults
            ) from None
        return plan, chain

    def _load_plugins(self) -> Plugins:
        if self._plugins is None:
            from meta.generate.plugins import load_plugins

            self._plugins = load_plugins()
        return self._plugins

    def _source_file(self, visit: Visit, unit: Generate, role: str, source: UnitSource) -> Path:
        if source.input is not None:
            spec = visit.frame.plan.inputs[source.input]
            if not isinstance(spec, FileInput):
                raise UserError(
                    Fault(
                        unit.origin.file,
                        unit.origin.pointer + f"/generate/{role}/input",
                        f"input '{source.input}' must be a file to be read as a {role}",
                    )
                )
            return spec.path
        producers = {done.name: done for done in visit.upstream}
        producer = producers.get(source.from_unit or "")
        if producer is None:
            feeding = ", ".join(sorted(producers)) or "none"
            raise UserError(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer + f"/generate/{role}/fromUnit",
                    f"'{source.from_unit}' is not among the units whose outputs flow into "
                    f"'{unit.name}' (those are: {feeding})",
                )
            )
        path = Path(self._outputs(producer.unit_id)) / (source.file or "")
        if not path.is_file():
            raise UserError(
                Fault(
                    unit.origin.file,
                    unit.origin.pointer + f"/generate/{role}/file",
                    f"unit '{source.from_unit}' left no file '{source.file}' in its outputs",
                )
            )
        return path

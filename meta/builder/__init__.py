"""Flows written in Python: the same flow language, made by typed functions.

    import meta.builder as mb

    flow = mb.flow(
        "etl",
        mb.sequence("etl", mb.step("extract", ["python", "extract.py"]), ...),
        inputs={"data": Path("data.json")},
    )

Each function's keyword arguments are the flow language's fields in snake_case. `to_yaml()` and
`to_dict()` check the flow as `meta validate` checks a file, and a fault names the Python line
that made the part at fault. `meta run FILE.py` (and validate, plan, graph, apply) runs the
module and takes its `flow` (see meta.builder.module). docs/python.md shows it all.
"""

from meta.builder.document import Flow
from meta.builder.parts import (
    Cache,
    Case,
    Defaults,
    FileInput,
    FlowRef,
    FromEnv,
    Generate,
    Limits,
    Misfits,
    OnFailure,
    Order,
    Pattern,
    Scope,
    SecretRef,
    Section,
    Source,
    Step,
    Unit,
    ValueInput,
    Visit,
)
from meta.builder.units import (
    bfs,
    case,
    cycle,
    dag,
    defaults,
    dfs,
    fanin,
    fanout,
    file_input,
    flow,
    flow_ref,
    from_env,
    from_input,
    from_unit,
    generate,
    limits,
    secret_ref,
    sequence,
    step,
    value_input,
)

__all__ = [
    "Cache",
    "Case",
    "Defaults",
    "FileInput",
    "Flow",
    "FlowRef",
    "FromEnv",
    "Generate",
    "Limits",
    "Misfits",
    "OnFailure",
    "Order",
    "Pattern",
    "Scope",
    "SecretRef",
    "Section",
    "Source",
    "Step",
    "Unit",
    "ValueInput",
    "Visit",
    "bfs",
    "case",
    "cycle",
    "dag",
    "defaults",
    "dfs",
    "fanin",
    "fanout",
    "file_input",
    "flow",
    "flow_ref",
    "from_env",
    "from_input",
    "from_unit",
    "generate",
    "limits",
    "secret_ref",
    "sequence",
    "step",
    "value_input",
]

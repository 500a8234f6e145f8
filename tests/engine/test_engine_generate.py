"""`generate` units in the engine: flows generated at run time from a description a step wrote.

The engine runs here in-process with the real `LocalDriver` (steps are real processes, so a
producer's outputs are real files a `fromUnit` can name), and its generators come from inline
plugins (`meta.testing`'s `meta_plugins`), never from the installed entry points.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meta.engine.engine import Engine
from meta.engine.frontiers import Done
from meta.errors import LimitExceeded, UserError
from meta.generate.plugins import Plugins
from meta.hookspecs import Description
from meta.local.driver import LocalDriver
from meta.plan.plan import Plan, compile_plan
from meta.testing import PluginLoader
from tests.engine.fakes import FakeJournal, RecordingListener, section, write_flow

FLOW = {"apiVersion": "meta-orchestrator.io/v1alpha1", "kind": "MetaFlow"}


def py(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A step running stdlib Python `code` (no braces pairs: they would be templates)."""
    return {"name": name, "run": {"command": [sys.executable, "-S", "-c", code]}, **extra}


def writes(name: str, file: str, document: Any) -> dict[str, Any]:
    """A step that writes `document` as JSON into META_OUTPUT/`file`."""
    text = json.dumps(json.dumps(document))
    code = (
        f"import os, pathlib; pathlib.Path(os.environ['META_OUTPUT'], {file!r}).write_text({text})"
    )
    return py(name, code)


def generate(name: str, description: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "generate": {"description": description, **extra}}


def generated_flow(name: str, root: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**FLOW, "metadata": {"name": name}, "spec": {**spec, "root": root}}


class Nest:
    """Understands `{"level": N}`: its flow writes `{"level": N + 1}` and generates from it, so
    every generated flow generates another, without end."""

    name = "nest"

    def score(self, description: Description) -> float:
        document = description.document
        return 50.0 if isinstance(document, dict) and "level" in document else 0.0

    def generate(self, description: Description) -> dict[str, Any]:
        level = int(description.document["level"])
        return generated_flow(
            f"nest-{level}",
            section(
                "seq",
                "sequence",
                units=[
                    writes("describe", "level.json", {"level": level + 1}),
                    generate("deeper", {"fromUnit": "describe", "file": "level.json"}),
                ],
            ),
        )


class Wide:
    """Understands `{"steps": N}`: a sequence of N steps s0, s1, ..."""

    name = "wide"

    def score(self, description: Description) -> float:
        document = description.document
        return 50.0 if isinstance(document, dict) and "steps" in document else 0.0

    def generate(self, description: Description) -> dict[str, Any]:
        count = int(description.document["steps"])
        steps = [writes(f"s{i}", "done.json", i) for i in range(count)]
        return generated_flow("wide", section("steps", "sequence", units=steps))


SEE_UPSTREAM = """
import json, os, pathlib
out = pathlib.Path(os.environ['META_OUTPUT'])
given = json.loads(pathlib.Path(os.environ['META_INPUT']).read_text())
seen = dict(
    cwd=os.getcwd(),
    upstream=sorted(p.name for p in pathlib.Path(os.environ['META_UPSTREAM']).iterdir()),
    hello=pathlib.Path(os.environ['META_UPSTREAM'], 'seed', 'hello.txt').read_text(),
    data=json.loads(pathlib.Path(given['data']).read_text()),
)
(out / 'seen.json').write_text(json.dumps(seen))
"""

PASS_ON = """
import os, pathlib, shutil
source = pathlib.Path(os.environ['META_UPSTREAM'], 'first', 'seen.json')
shutil.copy(source, pathlib.Path(os.environ['META_OUTPUT'], 'result.json'))
"""

COLLECT = """
import json, os, pathlib
up = pathlib.Path(os.environ['META_UPSTREAM'])
found = sorted(str(p.relative_to(up)) for p in up.rglob('*') if p.is_file())
pathlib.Path(os.environ['META_OUTPUT'], 'after.json').write_text(json.dumps(found))
"""


class Wire:
    """Understands `{"wire": true}`: a data input (the description's data file) and two steps,
    the first reporting what it sees, the second passing that on."""

    name = "wire"

    def score(self, description: Description) -> float:
        document = description.document
        return 50.0 if isinstance(document, dict) and document.get("wire") else 0.0

    def generate(self, description: Description) -> dict[str, Any]:
        assert description.data is not None
        return generated_flow(
            "wired",
            section("pair", "sequence", units=[py("first", SEE_UPSTREAM), py("second", PASS_ON)]),
            inputs={"data": {"path": description.relative(description.data)}},
        )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def driver(workdir: Path) -> Iterator[LocalDriver]:
    local = LocalDriver(workdir)
    yield local
    local.close()


def run(plan: Plan, driver: LocalDriver, plugins: Plugins, **options: Any) -> Done:
    return asyncio.run(Engine(plan, driver, plugins=plugins, **options).run())


def flow_plan(directory: Path, root: dict[str, Any], **options: Any) -> Plan:
    return compile_plan(write_flow(directory / "flow", root, **options))


def test_generated_flows_past_max_depth_fail_naming_the_chain(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                writes("seed", "level.json", {"level": 1}),
                generate("g", {"fromUnit": "seed", "file": "level.json"}),
            ],
        ),
        limits={"maxDepth": 3},
    )
    listener = RecordingListener()
    with pytest.raises(LimitExceeded) as caught:
        run(plan, driver, meta_plugins(Nest()), listener=listener)
    chain = [
        "t/top/g",
        "t/top/g/seq/deeper",
        "t/top/g/seq/deeper/seq/deeper",
        "t/top/g/seq/deeper/seq/deeper/seq/deeper",
    ]
    (fault,) = caught.value.faults
    assert "spec.limits.maxDepth (3)" in fault.reason
    assert fault.reason.endswith(": " + " -> ".join(chain))
    # The three allowed levels ran their steps; the fourth was refused before it generated.
    ran = [r.id for r in listener.finished if r.state == "succeeded"]
    assert ran == [
        "t/top/seed",
        "t/top/g/seq/describe",
        "t/top/g/seq/deeper/seq/describe",
        "t/top/g/seq/deeper/seq/deeper/seq/describe",
    ]


def test_max_depth_one_allows_one_generated_flow_but_none_inside_it(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                writes("seed", "level.json", {"level": 1}),
                generate("g", {"fromUnit": "seed", "file": "level.json"}),
            ],
        ),
        limits={"maxDepth": 1},
    )
    with pytest.raises(LimitExceeded, match=r"maxDepth \(1\): t/top/g -> t/top/g/seq/deeper$"):
        run(plan, driver, meta_plugins(Nest()))
    assert Path(driver.outputs("t/top/g/seq/describe"), "level.json").is_file()


def test_max_units_counts_generated_steps_and_names_the_unit_and_its_chain(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                writes("seed", "wide.json", {"steps": 6}),
                generate("g", {"fromUnit": "seed", "file": "wide.json"}),
            ],
        ),
        limits={"maxUnits": 4},
    )
    listener = RecordingListener()
    with pytest.raises(LimitExceeded) as caught:
        run(plan, driver, meta_plugins(Wide()), listener=listener)
    (fault,) = caught.value.faults
    assert "spec.limits.maxUnits (4)" in fault.reason
    assert "at t/top/g/steps/s3 " in fault.reason
    assert fault.reason.endswith("(generated under: t/top/g)")
    started = [r.id for r in listener.started]
    assert started == ["t/top/seed", "t/top/g/steps/s0", "t/top/g/steps/s1", "t/top/g/steps/s2"]


def test_within_the_limits_a_generated_flow_runs_to_its_end(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                writes("seed", "wide.json", {"steps": 3}),
                generate("g", {"fromUnit": "seed", "file": "wide.json"}),
            ],
        ),
        limits={"maxUnits": 4, "maxDepth": 1},
    )
    done = run(plan, driver, meta_plugins(Wide()))
    assert done == Done("top", "t/top/g/steps/s2")
    assert json.loads(Path(driver.outputs(done.unit_id), "done.json").read_text()) == 2


def test_a_generated_flow_gets_the_generate_units_upstream_and_passes_its_outputs_on(
    tmp_path: Path, workdir: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    seed = py(
        "seed",
        "import json, os, pathlib; out = pathlib.Path(os.environ['META_OUTPUT']); "
        "(out / 'wire.json').write_text(json.dumps(dict(wire=True))); "
        "(out / 'data.json').write_text(json.dumps([1, 2, 3])); "
        "(out / 'hello.txt').write_text('hello from seed')",
    )
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                seed,
                generate(
                    "g",
                    {"fromUnit": "seed", "file": "wire.json"},
                    data={"fromUnit": "seed", "file": "data.json"},
                ),
                py("after", COLLECT),
            ],
        ),
    )
    listener = RecordingListener()
    journal = FakeJournal()
    done = run(plan, driver, meta_plugins(Wire()), listener=listener, journal=journal)

    seen = json.loads(Path(driver.outputs("t/top/g/pair/first"), "seen.json").read_text())
    produced = Path(driver.outputs("t/top/seed"))
    # The generated flow lives beside its description: its steps run there, its data input
    # is the producer's data file, and its first unit sees the generate unit's upstream.
    assert Path(seen["cwd"]) == produced.resolve()
    assert seen["data"] == [1, 2, 3]
    assert seen["upstream"] == ["seed"]
    assert seen["hello"] == "hello from seed"
    # The unit after the generate unit receives the generated flow's outputs under its name.
    assert done == Done("top", "t/top/after")
    after = json.loads(Path(driver.outputs("t/top/after"), "after.json").read_text())
    assert after == ["g/result.json"]
    # Generated units are reported and journalled like any other, under the generate unit's id.
    order = ["t/top/seed", "t/top/g/pair/first", "t/top/g/pair/second", "t/top/after"]
    assert [r.id for r in listener.finished] == order
    assert [r.id for r in journal.ended] == order
    assert [s.id for s in listener.sections] == ["t/top/g/pair", "t/top"]


def test_a_description_given_as_an_input_and_a_named_generator(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    class Other(Wide):
        name = "other"

        def generate(self, description: Description) -> dict[str, Any]:
            return generated_flow("other", section("steps", "sequence", units=[py("o", "pass")]))

    root = section("top", "sequence", units=[generate("g", {"input": "spec"}, generator="other")])
    plan = flow_plan(
        tmp_path,
        root,
        inputs={"spec": {"path": "wide.json"}},
        files={"wide.json": {"steps": 2}},
    )
    listener = RecordingListener()
    # Wide and Other both score 50: without `generator: other` the two would tie.
    done = run(plan, driver, meta_plugins(Wide(), Other()), listener=listener)
    assert done == Done("top", "t/top/g/steps/o")
    assert [r.id for r in listener.finished] == ["t/top/g/steps/o"]


def test_a_tie_between_generators_is_a_user_error_naming_both(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    class Twin(Wide):
        name = "twin"

    plan = flow_plan(
        tmp_path,
        section("top", "sequence", units=[generate("g", {"input": "spec"})]),
        inputs={"spec": {"path": "wide.json"}},
        files={"wide.json": {"steps": 1}},
    )
    with pytest.raises(UserError, match=r"wide\.json: /: generators tie at score 50: twin, wide"):
        run(plan, driver, meta_plugins(Wide(), Twin()))


def test_a_producer_that_left_no_such_file_is_a_user_error_at_the_file_pointer(
    tmp_path: Path, driver: LocalDriver, meta_plugins: PluginLoader
) -> None:
    plan = flow_plan(
        tmp_path,
        section(
            "top",
            "sequence",
            units=[
                writes("seed", "other.json", {}),
                generate("g", {"fromUnit": "seed", "file": "wide.json"}),
            ],
        ),
    )
    with pytest.raises(UserError) as caught:
        run(plan, driver, meta_plugins(Wide()))
    (fault,) = caught.value.faults
    assert fault.file.endswith("flow.yaml")
    assert fault.pointer == "/spec/root/units/1/generate/description/file"
    assert fault.reason == "unit 'seed' left no file 'wide.json' in its outputs"

"""How data moves locally: micro scratch in RAM, symlinks, staging, the store, the report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.local.runs import Env, report, step, units_by_id

pytestmark = pytest.mark.e2e

PROBE = r"""
import json, os, sys
from pathlib import Path

name, size = sys.argv[1], int(sys.argv[2])


def tree(top):
    found = {}
    for folder, _, files in os.walk(top, followlinks=True):
        for file in files:
            full = Path(folder, file)
            found[str(full.relative_to(top))] = full.stat().st_size
    return found


upstream = Path(os.environ["META_UPSTREAM"])
scratch = Path(os.environ["META_SCRATCH"])
output = Path(os.environ["META_OUTPUT"])
probe = {
    "scratch": str(scratch),
    "scratchSeen": sorted(p.name for p in scratch.iterdir()),
    "output": str(output),
    "outputReal": os.path.realpath(output),
    "outputEmpty": not any(output.iterdir()),
    "input": json.loads(Path(os.environ["META_INPUT"]).read_text()),
    "upstream": {
        entry.name: {
            "link": entry.is_symlink(),
            "target": os.path.realpath(entry),
            "files": tree(entry),
        }
        for entry in sorted(upstream.iterdir())
    },
}
(scratch / f"{name}.mark").write_text(name)
(output / f"{name}.bin").write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
where = Path(os.environ["T_LOG"]).with_name("probe")
where.mkdir(exist_ok=True)
(where / f"{name}.json").write_text(json.dumps(probe))
print(f"hello from {name}")
"""

SIZES = {"first": 100_000, "second": 50_000, "consumer": 1234, "last": 99}
ITEMS = [300, 500, 700]


def _flow(env: Env) -> Path:
    env.script("probe.py", PROBE)
    probe = ("probe.py",)
    return env.flow(
        "data",
        {
            "name": "top",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "sequence",
                    "units": [
                        step("first", *probe, "first", str(SIZES["first"])),
                        step("second", *probe, "second", str(SIZES["second"])),
                    ],
                },
                step("consumer", *probe, "consumer", str(SIZES["consumer"])),
                {
                    "name": "fan",
                    "scope": "macro",
                    "pattern": "fanout",
                    "over": {"input": "items"},
                    "visit": step("sq", *probe, "sq{{ index }}", "{{ item }}"),
                },
                step("last", *probe, "last", str(SIZES["last"])),
            ],
        },
        inputs={"items": {"value": ITEMS}},
        defaults={"timeoutSeconds": 30},
    )


def _probes(env: Env) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in (env.root / "probe").iterdir()}


def _ram() -> bool:
    return Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK)


@pytest.fixture
def ran(env: Env) -> tuple[Env, Path, Any]:
    flow = _flow(env)
    workdir = env.root / "wd"
    done = env.meta("run", str(flow), "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr
    return env, workdir, done


def test_micro_steps_share_ram_scratch_and_hand_over_by_symlink(
    ran: tuple[Env, Path, Any],
) -> None:
    env, _, _ = ran
    probes = _probes(env)
    first, second = probes["first"], probes["second"]
    assert first["scratch"] == second["scratch"]
    assert "first.mark" in second["scratchSeen"]
    if _ram():
        assert first["scratch"].startswith("/dev/shm/")
        assert first["output"].startswith("/dev/shm/")
    assert first["upstream"] == {}
    # The second step reads the first's output in place: a link into the RAM scratch, no copy.
    handed = second["upstream"]["first"]
    assert handed["link"] is True
    assert handed["target"] == first["outputReal"]
    assert handed["files"] == {"first.bin": SIZES["first"]}
    assert all(p["outputEmpty"] for p in probes.values())
    # RAM scratch is cleared when the run ends.
    scratch_root = next(p for p in Path(first["scratch"]).parents if p.name.startswith("meta-"))
    assert not scratch_root.exists()


def test_macro_consumers_get_staged_copies_and_traffic_is_counted(
    ran: tuple[Env, Path, Any],
) -> None:
    env, workdir, _ = ran
    probes = _probes(env)
    consumer = probes["consumer"]
    assert consumer["scratch"] != probes["first"]["scratch"]
    assert "first.mark" not in consumer["scratchSeen"]
    staged = consumer["upstream"]["pod"]
    assert staged["link"] is False
    assert not staged["target"].startswith(probes["second"]["outputReal"])
    assert staged["files"] == {"second.bin": SIZES["second"]}
    # A fanout without gather gives all its visits, one subdirectory each, copied for real.
    fan = probes["last"]["upstream"]["fan"]
    assert fan["link"] is False
    assert fan["files"] == {f"sq.{i}/sq{i}.bin": size for i, size in enumerate(ITEMS)}
    assert probes["sq1"]["input"] == ITEMS[1]
    # Each visit starts the fanout, so it receives the section's own upstream: the consumer.
    for i in range(len(ITEMS)):
        assert probes[f"sq{i}"]["upstream"]["consumer"]["files"] == {
            "consumer.bin": SIZES["consumer"]
        }

    document = report(workdir)
    staged = SIZES["second"] + len(ITEMS) * SIZES["consumer"] + sum(ITEMS)
    assert document["bytesStaged"] == staged
    assert document["bytesPersisted"] == sum(SIZES.values()) + sum(ITEMS)


def test_every_unit_is_persisted_in_the_store_and_the_report_says_where(
    ran: tuple[Env, Path, Any],
) -> None:
    _, workdir, done = ran
    document = report(workdir)
    store = workdir / "store"
    units = units_by_id(document)
    expected = {
        "data/top/pod/first": "first",
        "data/top/pod/second": "second",
        "data/top/consumer": "consumer",
        "data/top/fan/0/sq": "sq0",
        "data/top/fan/1/sq": "sq1",
        "data/top/fan/2/sq": "sq2",
        "data/top/last": "last",
    }
    assert set(units) == set(expected)
    sizes = {**SIZES, **{f"sq{i}": size for i, size in enumerate(ITEMS)}}
    for uid, written in expected.items():
        where = store / uid / "@outputs"
        assert units[uid]["outputs"] == str(where)
        assert sorted(p.name for p in where.iterdir()) == [f"{written}.bin"]
        assert (where / f"{written}.bin").stat().st_size == sizes[written]
        assert f"hello from {written}" in (workdir / "logs" / uid / "1.out").read_text()
    # The fanout's outputs are one link per visit into the store, not copies.
    fan = store / "data/top/fan/@outputs"
    assert sorted(p.name for p in fan.iterdir()) == ["sq.0", "sq.1", "sq.2"]
    assert all((fan / f"sq.{i}").is_symlink() for i in range(3))
    assert (fan / "sq.2" / "sq2.bin").resolve() == (store / "data/top/fan/2/sq/@outputs/sq2.bin")
    assert document["outputs"] == str(store / "data/top/last/@outputs")
    assert f"outputs: {document['outputs']}" in done.stdout


def test_report_fields_and_types(ran: tuple[Env, Path, Any]) -> None:
    _, workdir, _ = ran
    document = report(workdir)
    assert document["flow"] == "data"
    assert document["state"] == "succeeded"
    assert isinstance(document["startedAt"], float)
    assert isinstance(document["finishedAt"], float)
    assert document["startedAt"] <= document["finishedAt"]
    assert type(document["bytesPersisted"]) is int
    assert type(document["bytesStaged"]) is int
    assert "error" not in document
    for unit in document["units"]:
        assert {
            "id",
            "name",
            "section",
            "scope",
            "state",
            "attempts",
            "startedAt",
            "finishedAt",
            "exitCode",
            "outputs",
        } <= set(unit)
        assert unit["state"] == "succeeded"
        assert unit["attempts"] == 1
        assert unit["exitCode"] == 0
        assert document["startedAt"] <= unit["startedAt"] <= unit["finishedAt"]
        assert unit["finishedAt"] <= document["finishedAt"]
        assert "resumed" not in unit
    units = units_by_id(document)
    assert units["data/top/pod/first"]["section"] == "data/top/pod"
    assert units["data/top/pod/first"]["scope"] == "micro"
    assert units["data/top/consumer"]["scope"] == "macro"
    assert units["data/top/fan/1/sq"]["name"] == "sq"
    sections = {s["id"]: s for s in document["sections"]}
    assert sections["data/top/pod"] == {
        "id": "data/top/pod",
        "name": "pod",
        "pattern": "sequence",
        "scope": "micro",
        "maxActive": 1,
        "peakActive": 1,
        "unitsRun": 2,
        "state": "succeeded",
    }
    fan = sections["data/top/fan"]
    assert (fan["pattern"], fan["maxActive"], fan["unitsRun"]) == ("fanout", 4, 3)
    assert 1 <= fan["peakActive"] <= 3
    assert sections["data/top"]["unitsRun"] == 4

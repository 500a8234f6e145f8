"""Generate one description in a worker process of its own, within a time limit, so that a slow
or stuck description never holds up another (`meta watch` handles each dropped file this way).

Also the pairing of a folder's files by name: `NAME.schema.json` (or `.schema.yaml`,
`.schema.yml`) is the description, `NAME.data.json` (or `.data.yaml`, `.data.yml`) its data,
and `NAME.meta.yaml` (or `.meta.yml`, `.meta.json`) its x-meta overlay.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from meta.errors import UserError
from meta.flow.files import display_path
from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import Plugins

SCHEMA_SUFFIXES = (".schema.json", ".schema.yaml", ".schema.yml")
DATA_SUFFIXES = (".data.json", ".data.yaml", ".data.yml")
OVERLAY_SUFFIXES = (".meta.yaml", ".meta.yml", ".meta.json")


@dataclass(frozen=True)
class Attempt:
    """What a worker made of one description: the flow's YAML and its generator, or the fault
    lines to write into `NAME.error.txt`."""

    yaml: str | None = None
    generator: str = ""
    faults: tuple[str, ...] = ()


def described_name(path: Path) -> str | None:
    """The NAME of a description or data file (`NAME.schema.json`, `NAME.data.yaml`...)."""
    for suffix in (*SCHEMA_SUFFIXES, *DATA_SUFFIXES):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def stem(description: Path) -> str:
    """A description's NAME, as the files read with it are named: its file's name without
    `.schema.json` (or `.schema.yaml`, `.schema.yml`, `.json`, `.yaml`, `.yml`)."""
    name = description.name
    for suffix in (*SCHEMA_SUFFIXES, ".json", ".yaml", ".yml"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def companions(description: Path) -> list[Path]:
    """The files beside a description that the built-in generators read with it by its name,
    there or not: its data and its overlay."""
    name = stem(description)
    return [
        description.parent / f"{name}{suffix}" for suffix in (*DATA_SUFFIXES, *OVERLAY_SUFFIXES)
    ]


def pair(folder: Path, name: str) -> tuple[Path | None, Path | None]:
    """The description and the data file of NAME in `folder` (the first suffix that exists,
    JSON before YAML); None for one that is not there."""
    found = []
    for suffixes in (SCHEMA_SUFFIXES, DATA_SUFFIXES):
        candidates = (folder / f"{name}{suffix}" for suffix in suffixes)
        found.append(next((path for path in candidates if path.is_file()), None))
    return found[0], found[1]


def generate_in_worker(
    plugins: Plugins,
    description: Path,
    flow: Path,
    *,
    data: Path | None = None,
    seconds: float,
    generator: str | None = None,
) -> Attempt:
    """Generate the flow of `description` (to be written at `flow`) in a forked process that
    is killed after `seconds`; a refusal, a generator's crash and the time limit all come back
    as fault lines naming the description."""
    context = multiprocessing.get_context("fork")  # the plugins are inherited, not pickled
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(
        target=_work, args=(plugins, description, flow, data, generator, send), daemon=True
    )
    worker.start()
    send.close()
    try:
        if receive.poll(seconds):
            attempt: Attempt = receive.recv()
            return attempt
    except EOFError:
        return Attempt(faults=(f"{display_path(description)}: /: the generator's worker died",))
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()
        receive.close()
    return Attempt(
        faults=(
            f"{display_path(description)}: /: generating took longer than {seconds:g} s: "
            "stopped (other files are not held up)",
        )
    )


def _work(
    plugins: Plugins,
    description: Path,
    flow: Path,
    data: Path | None,
    generator: str | None,
    send: Connection,
) -> None:
    try:
        described = read_description(description, data=data, flow_dir=flow.parent)
        generated = generate(plugins, described, flow_path=flow, generator=generator)
        attempt = Attempt(yaml=generated.yaml(), generator=generated.generator)
    except UserError as exc:
        attempt = Attempt(faults=tuple(str(fault) for fault in exc.faults))
    except Exception as exc:  # a plugin's bug: reported like a fault, never a traceback
        attempt = Attempt(
            faults=(f"{display_path(description)}: /: the generator failed: {exc!r}",)
        )
    send.send(attempt)
    send.close()

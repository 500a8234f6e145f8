"""A step's visit rendered into the `StepTask` a driver runs: command, env and image templated
for the visit's data, META_INPUT's value, and what flows into it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from meta.engine.driver import StepTask
from meta.engine.visit import Visit, located, named
from meta.errors import TemplateFault
from meta.flow.model import EnvValue, Step


def step_task(visit: Visit, step: Step) -> StepTask:
    """The first attempt at `step` in `visit`."""
    frame, context = visit.frame, visit.context
    run = step.run
    if run.templated:
        origin = step.origin
        command = tuple(
            visit.render(arg, origin, "run", "command", i) for i, arg in enumerate(run.command)
        )
        env: Mapping[str, EnvValue] = {
            k: visit.render(v, origin, "run", "env", k) if isinstance(v, str) else v
            for k, v in run.env.items()
        }
        image = None if run.image is None else visit.render(run.image, origin, "run", "image")
        _runnable(visit, step, command, env)
    else:
        command, env, image = run.command, run.env, run.image
    value = context.input
    if context.hidden and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in context.hidden}
    return StepTask(
        id=visit.uid,
        name=visit.name,
        section=visit.parent.id,
        scope=visit.parent.scope,
        command=command,
        env=env,
        image=image,
        input=value,
        upstream=named(visit.upstream),
        pod=visit.parent.pod,
        workdir=frame.directory,
        attempt=1,
        resources=run.resources,
    )


def _runnable(
    visit: Visit, step: Step, command: tuple[str, ...], env: Mapping[str, EnvValue]
) -> None:
    """A rendered program that is empty, or an argument or variable holding a NUL character (a
    result's "a\u0000b"), is a fault of the template: no program can be started so, and
    retrying cannot change that."""
    if not command[0]:
        where = step.origin.at("run", "command", 0)
        raise TemplateFault(located(where, visit.context, "the program to run renders empty"))
    places: list[tuple[str, str | int, str]] = [("command", i, a) for i, a in enumerate(command)]
    places += [("env", k, v) for k, v in env.items() if isinstance(v, str)]
    for field, key, value in places:
        if "\0" in value:
            where = step.origin.at("run", field, key)
            problem = "renders a NUL character, which a command or a variable cannot hold"
            raise TemplateFault(located(where, visit.context, problem))


def with_attempt(task: StepTask, attempt: int) -> StepTask:
    if attempt == task.attempt:
        return task
    return replace(task, attempt=attempt)

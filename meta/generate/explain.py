"""Why a generator was chosen, or why none was: what the generators saw in a description and
the reason behind each score.

A generator may offer `explain(description) -> (seen, why)`: `seen` lists what it read in the
description (for a JSON Schema: the draft, the root type, the node types and children fields),
`why` says in one phrase why it scores what it scores. Generators that do not offer it are
reported by their score alone. `explain` never raises for a description a generator cannot
read: the fault is the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meta.errors import UserError
from meta.generate.plugins import Plugins
from meta.hookspecs import Description, Generator


@dataclass(frozen=True)
class Verdict:
    generator: str
    score: float
    why: str


@dataclass
class Explanation:
    seen: list[str] = field(default_factory=list)
    """What the generators read in the description, each line once, in the order given."""
    verdicts: list[Verdict] = field(default_factory=list)
    """One per generator, by name."""

    @property
    def chosen(self) -> Verdict | None:
        """The highest-scoring generator, if one scores above 0 and no other ties with it."""
        best = max(self.verdicts, key=lambda v: v.score, default=None)
        if best is None or best.score <= 0:
            return None
        if sum(1 for v in self.verdicts if v.score == best.score) > 1:
            return None
        return best

    def lines(self) -> list[str]:
        """The explanation as `meta generate --explain` prints it."""
        chosen = self.chosen
        out = list(self.seen)
        for verdict in self.verdicts:
            mark = " (chosen)" if verdict is chosen else ""
            out.append(f"{verdict.generator}: {verdict.score:g}{mark}: {verdict.why}")
        return out

    def summary(self) -> str:
        """One line: what was seen, and why each generator declined."""
        seen = "; ".join(self.seen)
        reasons = "; ".join(f"{v.generator}: {v.why}" for v in self.verdicts)
        return f"{seen + ' — ' if seen else ''}{reasons}"


def explain(plugins: Plugins, description: Description) -> Explanation:
    """What every registered generator makes of `description`, and why."""
    found = Explanation()
    for registered in plugins.catalogue:
        generator = registered.generator
        seen, why = _ask(generator, description)
        found.seen.extend(line for line in seen if line not in found.seen)
        found.verdicts.append(Verdict(generator.name, _score(generator, description), why))
    return found


def reason(generator: Generator, description: Description) -> str:
    """Why `generator` scores `description` as it does, in its own words."""
    return _ask(generator, description)[1]


def _ask(generator: Generator, description: Description) -> tuple[list[str], str]:
    ask = getattr(generator, "explain", None)
    if not callable(ask):
        return [], "(it gives no reasons)"
    try:
        seen, why = ask(description)
    except UserError as exc:
        return [], exc.one_line()
    return list(seen), str(why)


def _score(generator: Generator, description: Description) -> float:
    try:
        return float(generator.score(description))
    except UserError:
        return 0.0

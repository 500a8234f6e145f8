"""Every hook is documented under its exact signature, and exercised by a test (as datasette's
tests/test_docs.py does): adding a hook to meta/hookspecs.py without both fails here."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import meta.hookspecs
from meta.hookspecs import PROJECT

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"
THIS = Path(__file__).resolve()


def hookspecs(module: Any = meta.hookspecs) -> dict[str, Callable[..., Any]]:
    """The hook specifications of a module, by name."""
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value) and hasattr(value, f"{PROJECT}_spec")
    }


def signature(hook: Callable[..., Any]) -> str:
    """`def NAME(ARGS) -> RETURN` as written in the source (annotations are strings there)."""

    def text(annotation: Any) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    spec = inspect.signature(hook)
    params = []
    for param in spec.parameters.values():
        part = param.name
        if param.annotation is not inspect.Parameter.empty:
            part += f": {text(param.annotation)}"
        if param.default is not inspect.Parameter.empty:
            part += f" = {param.default!r}"
        params.append(part)
    result = ""
    if spec.return_annotation is not inspect.Signature.empty:
        result = f" -> {text(spec.return_annotation)}"
    return f"def {hook.__name__}({', '.join(params)}){result}"


def normalise(code: str) -> str:
    """One line, no layout: the way a signature may be wrapped in the docs does not matter."""
    code = re.sub(r"\s+", " ", code).strip()
    code = re.sub(r"\(\s", "(", code)
    code = re.sub(r",?\s\)", ")", code)
    return re.sub(r"\s*:\s*(\.\.\.)?$", "", code)


def documented(markdown: str) -> dict[str, str]:
    """For each `### meta_...` heading, the first python code block under it (normalised)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^### (meta_\w+)\s*$(.*?)(?=^#{1,3} |\Z)", markdown, re.M | re.S):
        block = re.search(r"```python\n(.*?)```", match.group(2), re.S)
        found[match.group(1)] = normalise(block.group(1)) if block else ""
    return found


def documentation_faults(hooks: dict[str, Callable[..., Any]], markdown: str) -> list[str]:
    sections = documented(markdown)
    faults = []
    for name, hook in sorted(hooks.items()):
        if name not in sections:
            faults.append(f"{name}: no '### {name}' section in docs/plugins.md")
        elif sections[name] != normalise(signature(hook)):
            faults.append(
                f"{name}: docs say {sections[name]!r}, the hookspec is {signature(hook)!r}"
            )
    return faults


def hook_test_files() -> list[Path]:
    files = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/test_*.py")]
    return sorted(path for path in files if path.resolve() != THIS)


def untested(hooks: Iterable[str], files: Iterable[Path]) -> list[str]:
    """The hooks that no test file (other than this one) names."""
    texts = [path.read_text(encoding="utf-8") for path in files]
    return [
        name for name in sorted(hooks) if not any(re.search(rf"\b{name}\b", text) for text in texts)
    ]


HOOKS = hookspecs()


def test_there_are_hooks_to_check() -> None:
    assert {"meta_register_generators", "meta_transform_flow"} <= set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_named_meta_verb_noun(name: str) -> None:
    assert re.fullmatch(r"meta_[a-z]+_[a-z]+(_[a-z]+)*", name)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_under_its_exact_signature(name: str) -> None:
    assert documentation_faults({name: HOOKS[name]}, DOCS.read_text(encoding="utf-8")) == []


def test_docs_document_no_hook_that_does_not_exist() -> None:
    sections = documented(DOCS.read_text(encoding="utf-8"))
    assert sorted(set(sections) - set(HOOKS)) == []


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_exercised_by_a_test(name: str) -> None:
    assert untested([name], hook_test_files()) == [], f"no test outside {THIS.name} names {name}"


# The checks above must fail for a hook without docs or test: shown on a made-up hook.


def meta_frobnicate_flow(flow: dict[str, Any], depth: int = 2) -> None:
    """A made-up hook."""


def test_a_hook_without_a_section_is_reported() -> None:
    hooks = {**HOOKS, "meta_frobnicate_flow": meta_frobnicate_flow}

    faults = documentation_faults(hooks, DOCS.read_text(encoding="utf-8"))

    assert faults == [
        "meta_frobnicate_flow: no '### meta_frobnicate_flow' section in docs/plugins.md"
    ]


def test_a_section_with_another_signature_is_reported() -> None:
    markdown = (
        "### meta_frobnicate_flow\n\n```python\n"
        "def meta_frobnicate_flow(flow: dict[str, Any]) -> None\n```\n"
    )

    (fault,) = documentation_faults({"meta_frobnicate_flow": meta_frobnicate_flow}, markdown)

    assert (
        "the hookspec is 'def meta_frobnicate_flow(flow: dict[str, Any], depth: int = 2)" in fault
    )


def test_a_wrapped_signature_matches() -> None:
    markdown = (
        "### meta_frobnicate_flow\n\n```python\ndef meta_frobnicate_flow(\n"
        "    flow: dict[str, Any],\n    depth: int = 2,\n) -> None: ...\n```\n"
    )

    assert documentation_faults({"meta_frobnicate_flow": meta_frobnicate_flow}, markdown) == []


def test_a_hook_no_test_names_is_reported(tmp_path: Path) -> None:
    test = tmp_path / "test_something.py"
    test.write_text("def meta_frobnicate_flows(flow): ...\n# meta_transform_flow\n")

    assert untested(["meta_frobnicate_flow", "meta_transform_flow"], [test]) == [
        "meta_frobnicate_flow"
    ]

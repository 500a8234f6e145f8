"""choose: the best score wins, --generator NAME overrides, and every refusal names its reason."""

from __future__ import annotations

import pytest

from meta.errors import UserError
from meta.generate.pipeline import choose
from meta.hookspecs import Description
from meta.testing import PluginLoader
from tests.generate.fakes import FixedGenerator


def test_the_best_score_wins(meta_plugins: PluginLoader, describe: Description) -> None:
    plugins = meta_plugins(FixedGenerator("low", 1), FixedGenerator("high", 5))

    assert choose(plugins, describe).generator.name == "high"


def test_a_named_generator_wins_over_a_better_score(
    meta_plugins: PluginLoader, describe: Description
) -> None:
    plugins = meta_plugins(FixedGenerator("low", 1), FixedGenerator("high", 5))

    assert choose(plugins, describe, "low").generator.name == "low"


def test_an_unknown_name_is_an_error_listing_the_known_ones(
    meta_plugins: PluginLoader, describe: Description
) -> None:
    plugins = meta_plugins(FixedGenerator("alpha"), FixedGenerator("beta"))

    with pytest.raises(UserError) as caught:
        choose(plugins, describe, "gamma")

    (fault,) = caught.value.faults
    assert fault.file.endswith("sample.demo")
    assert "no generator named 'gamma'" in fault.reason
    assert "alpha" in fault.reason and "beta" in fault.reason


def test_a_named_generator_that_does_not_understand_the_description_is_an_error(
    meta_plugins: PluginLoader, describe: Description
) -> None:
    plugins = meta_plugins(FixedGenerator("refuses", 0), FixedGenerator("accepts", 1))

    with pytest.raises(UserError, match="generator 'refuses' does not understand"):
        choose(plugins, describe, "refuses")


def test_a_tie_is_an_error_naming_the_candidates(
    meta_plugins: PluginLoader, describe: Description
) -> None:
    plugins = meta_plugins(
        FixedGenerator("first", 3), FixedGenerator("second", 3), FixedGenerator("third", 1)
    )

    with pytest.raises(UserError) as caught:
        choose(plugins, describe)

    (fault,) = caught.value.faults
    assert fault.reason == ("generators tie at score 3: first, second; choose one with --generator")


def test_a_tie_is_settled_by_naming_one(meta_plugins: PluginLoader, describe: Description) -> None:
    plugins = meta_plugins(FixedGenerator("first", 3), FixedGenerator("second", 3))

    assert choose(plugins, describe, "second").generator.name == "second"


def test_nothing_matches_is_an_error_listing_the_generators(
    meta_plugins: PluginLoader, describe: Description
) -> None:
    plugins = meta_plugins(FixedGenerator("zero", 0))

    with pytest.raises(UserError) as caught:
        choose(plugins, describe)

    (fault,) = caught.value.faults
    assert fault.reason.startswith("no generator understands this description (generators: ")
    assert "zero" in fault.reason

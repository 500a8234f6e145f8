"""The local-run fixture (`env`), shared with the CLI tests of `meta watch`."""

from tests.local.runs import env  # noqa: F401  (a fixture, registered by being imported here)

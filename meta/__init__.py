"""meta-orchestrator: data describes the pipeline.

The public surface is small: `hookimpl` to write plugins, `meta.testing` to test them, and the
`meta` command. Everything else is internal and may change.
"""

from meta.hookspecs import hookimpl

__all__ = ["hookimpl"]

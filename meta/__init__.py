"""meta-orchestrator: data describes the pipeline.

The public surface is small: `hookimpl` to write plugins, `meta.testing` to test them, and the
`meta` command. Everything else is internal and may change.
"""

import os as _os
import sys as _sys

if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "meta":
    # The `meta` command's own process: take Ctrl-C and SIGTERM before any slow import, so a
    # signal while it starts ends it with 130 or 143 and no traceback (meta.local.interrupts).
    # First through the built-in `_signal`: importing `signal` itself takes milliseconds (it
    # builds its enums), and a signal in them would be a KeyboardInterrupt traceback.
    import _signal
    import gc

    # Python's cyclic collector would walk the objects made so far some sixty times while
    # the modules load (some 8% of the start-up), and find next to no garbage: it is off until
    # the command's modules are loaded (meta.cli.main turns it back on).
    gc.disable()

    def _starting(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    _signal.signal(_signal.SIGINT, _starting)
    _signal.signal(_signal.SIGTERM, _starting)
    # The terminal closed; under `nohup` (SIGHUP ignored) meta goes on.
    if _signal.getsignal(_signal.SIGHUP) != _signal.SIG_IGN:
        _signal.signal(_signal.SIGHUP, _starting)
    from meta.local.interrupts import INTERRUPTS as _INTERRUPTS

    _INTERRUPTS.owns_process = True
    _INTERRUPTS.install()

from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:
    from meta.hookspecs import hookimpl


def __getattr__(name: str) -> object:
    # `meta.hookimpl` imports pluggy when a plugin asks for it, not at every `meta` command.
    if name == "hookimpl":
        from meta.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'meta' has no attribute {name!r}")


__all__ = ["hookimpl"]

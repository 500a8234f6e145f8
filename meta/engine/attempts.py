"""Attempts at one unit: the journal's word that it finished before (then it is not run again),
retries with backoff, each attempt's time limit, and the records every attempt leaves with the
listener and the journal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from meta.engine.deadlines import Deadlines
from meta.engine.driver import Exit, Running
from meta.engine.records import UPSTREAM_FAILED, Journal, Listener, UnitRecord, UnitState
from meta.engine.turns import Turns
from meta.engine.visit import Visit, ended_from_outside
from meta.errors import RunFailed

MAX_BACKOFF_SECONDS = 60.0
BEFORE_RETRY = "cancelled while waiting to retry"
TAIL_AFTER_STOP_SECONDS = 0.1
LAST_WORDS_SECONDS = 5.0

Start = Callable[[int], Awaitable[Running]]
"""Starts attempt N of a unit (from 1, or on from its attempts in earlier sessions)."""


class Attempts:
    def __init__(self, listener: Listener, journal: Journal, parallelism: int | None) -> None:
        """`parallelism`: at most this many attempts run at once (`spec.parallelism`)."""
        self._listener = listener
        self._journal = journal
        self._turns = Turns(parallelism) if parallelism else None
        # Not copied: a journal may check each unit's record only when it is asked for.
        self._finished = journal.finished()
        self._deadlines = Deadlines()

    def finished_before(self, uid: str) -> UnitRecord | None:
        """The record of `uid` when the journal says it finished in an earlier run (then it is
        reported again, as resumed, and the unit is not to run); else None."""
        previous = self._finished.get(uid)
        if previous is not None:
            self._listener.unit_finished(previous)
        return previous

    def skip(self, visit: Visit, reason: str) -> bool:
        """Record that a unit was skipped, and why; whether that is news (it is not when an
        earlier session skipped it for its condition too: what reads it need not run again).
        One its condition skipped counts as finished on resume; one skipped because a unit it
        reads failed does not (that unit is run again)."""
        previous = self._finished.get(visit.uid)
        if reason != UPSTREAM_FAILED and previous is not None and previous.state == "skipped":
            self._listener.unit_finished(previous)
            return False
        self._never_ran(visit, "skipped", reason)
        return True

    def fail(self, visit: Visit, reason: str) -> None:
        """Record that a unit failed before any attempt of it started (a fault in what it was
        to run with)."""
        self._never_ran(visit, "failed", reason)

    def _never_ran(self, visit: Visit, state: UnitState, reason: str) -> None:
        now = time.time()
        parent = visit.parent
        record = UnitRecord(
            visit.uid, visit.name, parent.id, parent.scope, state, 0, now, now, reason=reason
        )
        self._journal.record_finished(record)
        self._listener.unit_finished(record)

    async def run(
        self, visit: Visit, retries: int, timeout: float | None, start: Start
    ) -> UnitRecord:
        """Run attempts of one unit until one succeeds, and return its record; `RunFailed`
        when the last one fails. Each session gives a unit `retries` more tries."""
        backoff = visit.frame.plan.flow.defaults.retry_backoff_seconds
        parent = visit.parent
        earlier = self._journal.attempts_made(visit.uid)
        attempt = earlier
        retrying: UnitRecord | None = None
        """The record of a failed attempt another is to follow, until that one starts."""
        try:
            while True:
                attempt += 1
                # A unit waiting for its turn is not running: its record starts with the attempt.
                turns = self._turns
                async with turns.turn(parent.always) if turns else contextlib.nullcontext():
                    halted = parent.halted()
                    if not halted:
                        record = UnitRecord(
                            visit.uid,
                            visit.name,
                            parent.id,
                            parent.scope,
                            "running",
                            attempt,
                            time.time(),
                        )
                        retrying = None
                        self._listener.unit_started(record)
                        self._journal.record_started(record)
                        parent.ran_here()
                        if parent.ending.keep:
                            parent.ending.started.add(visit.uid)
                        with parent.ending.activity():
                            exit_, reason = await self._attempt(start(attempt), timeout, record)
                if halted:
                    # A failure on its way out ends its section: nothing starts, and its turn
                    # went back (to the finally units first).
                    await ended_from_outside()
                if exit_.code == 0:
                    record = _ended(record, "succeeded", exit_)
                    self._journal.record_finished(record)
                    self._listener.unit_finished(record)
                    return record
                if attempt - earlier > retries:
                    record = _ended(record, "failed", exit_, reason)
                    self._journal.record_finished(record)
                    self._listener.unit_finished(record)
                    raise RunFailed(visit.uid, reason, exit_.stderr_tail)
                # On record too: the report keeps every attempt, and why each ended.
                retrying = _ended(record, "failed", exit_, reason, retrying=True)
                self._journal.record_finished(retrying)
                self._listener.unit_finished(retrying)
                tried = attempt - earlier
                await asyncio.sleep(min(backoff * 2 ** (tried - 1), MAX_BACKOFF_SECONDS))
        except asyncio.CancelledError:
            if retrying is not None:
                # Cancelled before its next attempt started (waiting out the backoff, or for a
                # turn, or halted): it had a retry left (a resumed run gives it one), so it is
                # cancelled, not failed. The same attempt's record again, as its last word.
                cancelled = replace(
                    retrying,
                    state="cancelled",
                    retrying=False,
                    reason=f"{retrying.reason}; {BEFORE_RETRY}",
                )
                self._journal.record_finished(cancelled)
                self._listener.unit_finished(cancelled)
            raise

    async def _attempt(
        self, starting: Awaitable[Running], timeout: float | None, record: UnitRecord
    ) -> tuple[Exit, str]:
        running = await starting
        limit = None if timeout is None else self._deadlines.start(timeout)
        try:
            exit_ = await running.wait()
        except asyncio.CancelledError:
            if limit is not None and limit.expired and limit.task.uncancel() <= limit.cancelling:
                words = await _last_words(running)
                await running.stop()
                tail = words or await _tail_after_stop(running)
                return Exit(-1, tail), f"timed out after {timeout:g} s"
            await asyncio.shield(running.stop())
            cancelled = _ended(record, "cancelled", Exit(-1), "cancelled")
            self._journal.record_finished(cancelled)
            self._listener.unit_finished(cancelled)
            raise
        except BaseException:
            await asyncio.shield(running.stop())
            raise
        finally:
            if limit is not None:
                self._deadlines.end(limit)
        if exit_.reason:
            return exit_, exit_.reason
        reason = (
            f"exited with code {exit_.code}"
            if exit_.code >= 0
            else f"killed by signal {-exit_.code}"
        )
        return exit_, reason


def _ended(
    record: UnitRecord, state: Any, exit_: Exit, reason: str = "", *, retrying: bool = False
) -> UnitRecord:
    # Built whole: dataclasses.replace costs several times more, and this runs once per unit.
    return UnitRecord(
        id=record.id,
        name=record.name,
        section=record.section,
        scope=record.scope,
        state=state,
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=time.time(),
        exit_code=exit_.code,
        reason=reason,
        stderr_tail=exit_.stderr_tail,
        resumed=record.resumed,
        retrying=retrying,
        result=exit_.result,
    )


async def _last_words(running: Running) -> str:
    """What a step about to be stopped for its time limit wrote last, when its driver can read
    it only while the step is there (a pod's log goes with the pod); not waited for long."""
    try:
        return await asyncio.wait_for(running.last_words(), LAST_WORDS_SECONDS)
    except Exception:
        return ""


async def _tail_after_stop(running: Running) -> str:
    """The stderr tail of a stopped attempt, when its driver has it at hand (a timed-out step's
    last words are what a person needs); a driver that has not is not waited for long."""
    try:
        ended = await asyncio.wait_for(running.wait(), TAIL_AFTER_STOP_SECONDS)
    except Exception:
        return ""
    return ended.stderr_tail

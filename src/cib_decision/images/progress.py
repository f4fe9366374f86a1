"""Progress lines for task logs: one line per step and per state change, with elapsed times,
so that a log reads as a story (`waiting for ...`, `pending -> running after 35s`, ...).

Clock and sleep are injected, so tests run long waits without sleeping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from typing import TextIO

from ..errors import BuildError


def duration(seconds: float) -> str:
    """`3h02m05s`, `4m10s`, `35s`: a duration for people."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class WaitTimeout(BuildError):
    """A bounded wait ran out; the message names what was awaited, for how long, and the
    last state seen."""


class Progress:
    """Writes the story of one build to `stream` (the task log)."""

    def __init__(self, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.stream = stream if stream is not None else sys.stdout
        self.clock, self.sleep = clock, sleep
        self.started = clock()

    def say(self, message: str) -> None:
        """One line, prefixed by the time since the build started."""
        print(f"[{duration(self.clock() - self.started):>9}] {message}", file=self.stream,
              flush=True)

    def wait(self, what: str, poll: Callable[[], str], *, done: Collection[str],
             failed: Collection[str] = (), timeout: float, interval: float = 15.0) -> str:
        """Poll until `poll()` returns a state in `done`; one line per state change.

        A state in `failed` raises BuildError at once; no `done` state within `timeout`
        seconds raises WaitTimeout. Returns the final state.
        """
        self.say(f"waiting for {what} (at most {duration(timeout)})")
        start, last = self.clock(), None
        while True:
            state = poll()
            waited = self.clock() - start
            if state != last:
                change = f"{last} -> {state}" if last is not None else state
                self.say(f"  {what}: {change} after {duration(waited)}")
                last = state
            if state in done:
                return state
            if state in failed:
                raise BuildError(f"{what}: state {state} after {duration(waited)}")
            if waited >= timeout:
                raise WaitTimeout(f"timed out after {duration(waited)} waiting for {what}; "
                                  f"last state: {state}")
            self.sleep(min(interval, max(timeout - waited, 0.0)) or interval)

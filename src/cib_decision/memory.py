"""Keeping Python's cyclic garbage collector away from large structures that stay alive."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """Run the block with the cyclic garbage collector off, then restore its state.

    Parsing a fleet or generating a graph allocates hundreds of thousands of objects that all
    stay alive; collections meanwhile only traverse a growing heap and free nothing (taskgraph
    does the same around its own generation). Reference counting still frees everything else.

    With `freeze`, everything alive at the end is moved out of the collector's sight for good
    (`gc.freeze`): for a command whose result lives until the process ends, so that neither
    the next collection (while the result is written out) nor the one at exit walks it all.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()

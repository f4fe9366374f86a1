"""Pausing Python's cyclic garbage collector while building large structures that stay alive."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off, then restore its state.

    Parsing a fleet or generating a graph allocates hundreds of thousands of objects that all
    stay alive; collections meanwhile only traverse a growing heap and free nothing (taskgraph
    does the same around its own generation). Reference counting still frees everything else.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

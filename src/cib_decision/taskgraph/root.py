"""Where taskgraph finds the kinds: `taskcluster/` of the repository, named relative to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

ROOT_DIR = "taskcluster"


@contextlib.contextmanager
def kinds_root(repository: Path) -> Iterator[str]:
    """Run taskgraph generation from the repository's root and yield the root directory to give
    its generator. taskgraph writes each task's `metadata.source` from the kind's path as given,
    so an absolute path (a temporary export of `--head REV`, a checkout directory) would end up
    in every task's link to its source instead of `taskcluster/kinds/<kind>`."""
    with contextlib.chdir(repository):
        yield ROOT_DIR

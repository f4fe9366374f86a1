"""pytest plugin: the `dev_taskcluster` fixture, a running local Taskcluster with fresh state.

Register it with `pytest_plugins = ["cib_decision.devtc.testing"]`. One server serves the whole
session on a free port; every test gets it reset (no tasks, index entries, pools, artifacts,
counters or faults). Tests skip when the Taskcluster schemas are absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..tcschemas import ENV_VAR, find_schema_dir
from .harness import DevTaskcluster


@pytest.fixture(scope="session")
def _dev_taskcluster_server() -> Iterator[DevTaskcluster]:
    directory = find_schema_dir()
    if directory is None or not directory.is_dir():
        pytest.skip("the Taskcluster schemas are absent: they live in ../shared/reference "
                    f"beside the checkout (or set {ENV_VAR})")
    server = DevTaskcluster()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dev_taskcluster(_dev_taskcluster_server: DevTaskcluster) -> DevTaskcluster:
    """A running local Taskcluster with fresh state (see `DevTaskcluster`)."""
    _dev_taskcluster_server.reset()
    return _dev_taskcluster_server

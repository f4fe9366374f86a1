"""pytest plugin: the `dev_taskcluster` fixture, a running local Taskcluster with fresh state.

Register it with `pytest_plugins = ["cib_decision.devtc.testing"]`. One server serves the whole
session on a free port; every test gets it reset (no tasks, index entries, pools, artifacts,
counters or faults). Tests skip when the Taskcluster schemas are absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import taskcluster

from ..tcschemas import ENV_VAR, find_schema_dir
from .harness import DevTaskcluster


def require_schemas() -> None:
    """Skip the calling test when the Taskcluster schemas are absent."""
    directory = find_schema_dir()
    if directory is None or not directory.is_dir():
        pytest.skip("the Taskcluster schemas are absent: they live in ../shared/reference "
                    f"beside the checkout (or set {ENV_VAR})")


@pytest.fixture(scope="session")
def _dev_taskcluster_server() -> Iterator[DevTaskcluster]:
    require_schemas()
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


def new_task(**fields: Any) -> dict[str, Any]:
    """A valid createTask body (created now, deadline in an hour, queue `cib-3/decision`,
    schedulerId `cib-level-3`); `fields` override it and a field set to None is left out."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "taskQueueId": "cib-3/decision",
        "schedulerId": "cib-level-3",
        "created": taskcluster.stringDate(now),
        "deadline": taskcluster.stringDate(now + timedelta(hours=1)),
        "payload": {},
        "metadata": {"name": "a task", "description": "made by a test",
                     "owner": "dev@example.com",
                     "source": "https://github.com/example/images/blob/main/x.yml"},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}

"""pytest plugin: the `dev_taskcluster` fixture, a running local Taskcluster with fresh state.

Register it with `pytest_plugins = ["cib_decision.devtc.testing"]`. One server serves the whole
session on a free port; every test gets it reset (no tasks, index entries, pools, artifacts,
objects, counters or faults; the timing restored). Its claimWork waits `CLAIM_WORK_TIMEOUT`
seconds for work rather than the queue's 20, so a worker polling an empty queue does not hold a
test up. Tests skip when the Taskcluster schemas are absent. `taskgraph_env` points taskgraph's
clients at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskgraph.util import taskcluster as tg

import taskcluster

from ..tcschemas import ENV_VAR, find_schema_dir
from .harness import DevTaskcluster

CLAIM_WORK_TIMEOUT = 1.0


def require_schemas() -> None:
    """Skip the calling test when the Taskcluster schemas are absent."""
    directory = find_schema_dir()
    if directory is None or not directory.is_dir():
        pytest.skip("the Taskcluster schemas are absent: they live in ../shared/reference "
                    f"beside the checkout (or set {ENV_VAR})")


@pytest.fixture(scope="session")
def _dev_taskcluster_server() -> Iterator[DevTaskcluster]:
    require_schemas()
    server = DevTaskcluster(claim_work_timeout=CLAIM_WORK_TIMEOUT)
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


@pytest.fixture
def taskgraph_env(dev_taskcluster: DevTaskcluster,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """taskgraph's clients and session (functools caches) pointed at `dev_taskcluster` with
    the root client's credentials."""
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    for name, value in dev_taskcluster.environ().items():
        monkeypatch.setenv(name, value)
    caches = (tg.get_root_url, tg.get_taskcluster_client, tg.get_session)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


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

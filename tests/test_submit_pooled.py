"""Submission through one connection pool: the Submitter makes a taskcluster client send every
request through one `requests.Session` (kept-open connections, at most one per request in
flight) instead of a new session and connection per request; ids and results are unchanged."""

from __future__ import annotations

import logging

import slugid

import taskcluster
from cib_decision import tc
from cib_decision.devtc.testing import new_task
from cib_decision.submit import PendingTask, Submitter
from cib_decision.taskids import task_id_for


def _graph(decision: str, count: int) -> list[PendingTask]:
    """A chain of roots and children: task i depends on task i // 2 (the first on the
    decision task)."""
    ids = [task_id_for(decision, f"task-{i}") for i in range(count)]
    return [PendingTask(ids[i], f"task-{i}", new_task(
        taskGroupId=decision, dependencies=[ids[i // 2] if i else decision],
        tags={"label": f"task-{i}"})) for i in range(count)]


def test_one_session_and_a_few_kept_open_connections_create_every_task_once(dev_taskcluster):
    decision = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options())
    queue.createTask(decision, new_task(taskGroupId=decision))
    tasks = _graph(decision, 40)
    submitter = Submitter(queue, concurrency=4)
    assert submitter.queue is queue and getattr(queue, "_cib_pooled", False)

    report = submitter.submit(tasks)

    assert report.ok and sorted(report.created) == sorted(t.label for t in tasks)
    pools = list(queue.session.adapters["http://"].poolmanager.pools._container.values())
    assert len(pools) == 1 and pools[0].num_connections <= 4  # not one per request
    created = [t for i, t in dev_taskcluster.tasks().items()
               if t["taskGroupId"] == decision and i != decision]
    assert sorted(t["tags"]["label"] for t in created) == sorted(t.label for t in tasks)
    assert set(dev_taskcluster.tasks()) >= {t.task_id for t in tasks}


def test_a_rerun_through_the_pool_finds_the_tasks_and_creates_no_other(dev_taskcluster):
    decision = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options())
    queue.createTask(decision, new_task(taskGroupId=decision))
    tasks = _graph(decision, 12)
    Submitter(queue, concurrency=3).submit(tasks[:6])
    before = len(dev_taskcluster.tasks())

    report = Submitter(queue, concurrency=3).submit(tasks)  # the same client, again

    # the queue answers an identical create 200 again: counted as created, not duplicated
    assert report.ok and len(report.created) + len(report.existing) == 12
    assert len(dev_taskcluster.tasks()) == before + 6


def test_pooling_is_done_once_and_other_clients_send_as_before(dev_taskcluster, monkeypatch):
    pooled = taskcluster.Queue(dev_taskcluster.options())
    assert tc.reuse_connections(pooled) is pooled
    session = pooled.session
    tc.reuse_connections(pooled, 10)
    assert pooled.session is session

    sent = []
    monkeypatch.setattr("requests.request",
                        lambda *args, **kwargs: sent.append(args) or _real_request(*args,
                                                                                  **kwargs))
    plain = taskcluster.Queue(dev_taskcluster.options())
    task_id = slugid.nice()
    plain.createTask(task_id, new_task())  # the client's own way: requests.request
    assert len(sent) == 1
    pooled.task(task_id)  # the pooled client's session, not requests.request
    assert len(sent) == 1


_real_request = __import__("requests").request


def test_hawk_debug_strings_are_built_only_when_logged():
    import mohawk.util

    tc.quiet_hawk_debug()
    logger = logging.getLogger("mohawk")
    previous = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert "not formatted" in mohawk.util.pprint.pformat({"a": 1})
        logger.setLevel(logging.DEBUG)
        assert mohawk.util.pprint.pformat({"a": 1}) == "{'a': 1}"
    finally:
        logger.setLevel(previous)

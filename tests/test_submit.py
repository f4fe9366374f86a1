"""Submission: ids derived from the decision, dependency order, retries, idempotent reruns.

These drive `Submitter` with a small in-memory queue that answers like the real one (taskcluster
client exceptions with real status codes); the end-to-end tests against the local Taskcluster
are in test_decision.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import slugid
from hypothesis import given
from hypothesis import strategies as st
from taskcluster.exceptions import TaskclusterConnectionError, TaskclusterRestFailure

from cib_decision.decision import timestamp_paths
from cib_decision.errors import CibError
from cib_decision.submit import PendingTask, Submitter, same_task
from cib_decision.taskids import NICE_SLUGID, task_id_for


@given(st.text(min_size=1, max_size=200))
def test_derived_task_ids_are_nice_slugids_the_queue_accepts(label):
    assert NICE_SLUGID.match(task_id_for(slugid.nice(), label))


def test_the_same_decision_and_label_give_the_same_id_and_others_differ():
    decision = "Zk4ka7yQQ8-jOr2M0r4ZVg"
    assert task_id_for(decision, "disk-image-win10-64") == \
        task_id_for(decision, "disk-image-win10-64")
    ids = {task_id_for(decision, f"task-{i}") for i in range(5000)}
    ids |= {task_id_for("Ak4ka7yQQ8-jOr2M0r4ZVg", f"task-{i}") for i in range(5000)}
    assert len(ids) == 10000


def test_timestamp_paths_find_every_relative_datestamp():
    definition = {"created": {"relative-datestamp": "0 seconds"}, "payload": {
        "artifacts": [{"expires": {"relative-datestamp": "1 year"}, "path": "x"}]}}
    assert set(timestamp_paths(definition)) == {("created",),
                                                ("payload", "artifacts", 0, "expires")}


def _task(label: str, deps: tuple[str, ...] = (), created: str = "2026-11-21T10:00:00.000Z"
          ) -> PendingTask:
    return PendingTask(task_id_for("Zk4ka7yQQ8-jOr2M0r4ZVg", label), label,
                       {"created": created, "dependencies": list(deps), "metadata":
                        {"name": label}}, frozenset({("created",)}))


def test_a_stored_task_that_differs_only_in_timestamps_is_the_same_task():
    ours = _task("a")
    stored = {**ours.definition, "created": "2026-11-21T09:00:00.000Z", "retries": 5}
    assert same_task(stored, ours)
    assert not same_task({**stored, "metadata": {"name": "b"}}, ours)


class FakeQueue:
    """The queue's createTask/task contract, in memory: dependencies must exist, an identical
    definition is accepted again, a different one is a 409; `failures` makes the next calls for
    a task id fail with a status (500) or a dropped connection (0)."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[int]] = {}
        self.calls = 0
        self.lock = threading.Lock()

    def _fail(self, task_id: str) -> None:
        with self.lock:
            self.calls += 1
            pending = self.failures.get(task_id)
            status = pending.pop(0) if pending else None
        if status == 0:
            raise TaskclusterConnectionError("connection dropped", None)
        if status:
            raise TaskclusterRestFailure("server error", None, status_code=status,
                                         body={"code": "InternalServerError"})

    def createTask(self, task_id: str, definition: dict[str, Any]) -> dict[str, Any]:
        self._fail(task_id)
        for dep in definition.get("dependencies", []):
            if dep not in self.tasks:
                raise TaskclusterRestFailure("missing dependency", None, status_code=400,
                                             body={"code": "InputError"})
        with self.lock:
            stored = self.tasks.setdefault(task_id, definition)
        if stored != definition:
            raise TaskclusterRestFailure("taskId already used", None, status_code=409,
                                         body={"code": "RequestConflict"})
        return {"status": {"taskId": task_id}}

    def task(self, task_id: str) -> dict[str, Any]:
        self._fail(task_id)
        return self.tasks[task_id]


def _chain() -> list[PendingTask]:
    root = _task("disk")
    machines = [_task(f"machine-{i}", (root.task_id,)) for i in range(5)]
    pool = _task("pool", tuple(m.task_id for m in machines))
    return [pool, *reversed(machines), root]


def test_tasks_are_created_after_their_dependencies_whatever_the_input_order():
    queue = FakeQueue()
    report = Submitter(queue, concurrency=4, sleep=lambda s: None).submit(_chain())
    assert report.ok and len(report.created) == 7 and not report.existing


def test_server_errors_and_dropped_connections_are_retried_and_counted():
    queue = FakeQueue()
    tasks = _chain()
    queue.failures = {tasks[0].task_id: [500, 0, 503], tasks[-1].task_id: [0]}
    report = Submitter(queue, sleep=lambda s: None).submit(tasks)
    assert report.ok and len(report.created) == 7
    assert report.retries == 4


def test_a_rerun_with_new_timestamps_finds_its_tasks_and_creates_nothing_twice():
    queue = FakeQueue()
    Submitter(queue, sleep=lambda s: None).submit(_chain()[2:])  # killed half-way
    rerun = [PendingTask(t.task_id, t.label, {**t.definition,
                                              "created": "2026-11-21T11:00:00.000Z"},
                         t.timestamp_paths) for t in _chain()]
    report = Submitter(queue, sleep=lambda s: None).submit(rerun)
    assert report.ok
    assert sorted(report.existing) == sorted(t.label for t in _chain()[2:])
    assert sorted(report.created) == ["machine-4", "pool"]
    assert len(queue.tasks) == 7


def test_a_different_task_under_our_id_fails_that_task_and_skips_its_dependents():
    queue = FakeQueue()
    tasks = _chain()
    root = tasks[-1]
    queue.tasks[root.task_id] = {"metadata": {"name": "someone else"}}
    report = Submitter(queue, sleep=lambda s: None).submit(tasks)
    assert "already used by a different task" in report.failed["disk"]
    assert report.not_attempted == sorted(t.label for t in tasks[:-1])
    assert not report.created


def test_client_errors_are_not_retried():
    queue = FakeQueue()
    task = _task("a", ("missing-dependency-id",))
    report = Submitter(queue, sleep=lambda s: None).submit([task])
    assert report.failed["a"].startswith("400 InputError")
    assert queue.calls == 1


def test_persistent_server_errors_give_up_after_the_attempt_budget():
    queue = FakeQueue()
    task = _task("a")
    queue.failures = {task.task_id: [500] * 20}
    report = Submitter(queue, attempts=4, sleep=lambda s: None).submit([task])
    assert report.failed["a"].startswith("500")
    assert queue.calls == 4


def test_a_conflict_is_a_cib_error_naming_the_label():
    queue = FakeQueue()
    task = _task("a")
    queue.tasks[task.task_id] = {"metadata": {"name": "other"}}
    with pytest.raises(CibError, match=r"already used by a different task \(it differs at created"):
        Submitter(queue, sleep=lambda s: None).create(task)


def test_the_build_date_is_the_decision_tasks_creation_time_even_through_server_errors():
    from datetime import UTC, datetime

    from cib_decision.decision import DecisionRequest, stable_pushdate

    queue = FakeQueue()
    decision = "Zk4ka7yQQ8-jOr2M0r4ZVg"
    queue.tasks[decision] = {"created": "2026-11-21T10:00:00.000Z"}
    queue.failures = {decision: [500, 0]}
    request = DecisionRequest(options={"pushdate": 0}, decision_task_id=decision)
    stable_pushdate(request, queue, sleep=lambda s: None)
    assert request.options["pushdate"] == int(datetime(2026, 11, 21, 10, tzinfo=UTC).timestamp())


def test_an_unreadable_decision_task_stops_the_decision_rather_than_change_the_graph():
    from cib_decision.decision import DecisionRequest, stable_pushdate

    queue = FakeQueue()
    decision = "Zk4ka7yQQ8-jOr2M0r4ZVg"
    queue.failures = {decision: [500] * 20}
    with pytest.raises(CibError, match="cannot read the decision task"):
        stable_pushdate(DecisionRequest(options={"pushdate": 0}, decision_task_id=decision),
                        queue, sleep=lambda s: None)

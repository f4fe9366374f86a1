"""The local Taskcluster records the messages Taskcluster's notify service would send for a
resolved task's `notify.<kind>.<target>.on-<event>` routes (devtc/notify.py)."""

from __future__ import annotations

import pytest
import slugid

import taskcluster
from cib_decision.devtc.notify import parse_route
from cib_decision.devtc.testing import new_task

OWNER = "relops-windows@example.com"
ROUTES = [f"notify.email.{OWNER}.on-failed", f"notify.email.{OWNER}.on-exception",
          "index.cib.v2.example.x"]


def created(tc, **fields) -> str:
    task_id = slugid.nice()
    taskcluster.Queue(tc.options()).createTask(task_id, new_task(**fields))
    return task_id


def test_a_failed_task_with_an_on_failed_route_records_one_email(dev_taskcluster):
    task_id = created(dev_taskcluster, routes=ROUTES)
    dev_taskcluster.resolve_task(task_id, "failed")
    assert dev_taskcluster.notifications() == [
        {"kind": "email", "target": OWNER, "subject": f"Task failed: a task - {task_id}",
         "taskId": task_id, "state": "failed"}]


def test_a_completed_task_records_nothing(dev_taskcluster):
    dev_taskcluster.resolve_task(created(dev_taskcluster, routes=ROUTES), "completed")
    assert dev_taskcluster.notifications() == []


@pytest.mark.parametrize(("reason", "count"), [("malformed-payload", 1), ("canceled", 0),
                                               ("deadline-exceeded", 0)])
def test_exceptions_notify_except_canceled_and_deadline_exceeded(dev_taskcluster, reason, count):
    dev_taskcluster.resolve_task(created(dev_taskcluster, routes=ROUTES), "exception",
                                 reason=reason)
    assert len(dev_taskcluster.notifications()) == count


def test_a_retried_exception_is_no_resolution(dev_taskcluster):
    task_id = created(dev_taskcluster, routes=ROUTES)
    status = dev_taskcluster.resolve_task(task_id, "exception", reason="worker-shutdown")
    assert status["state"] == "pending"
    assert dev_taskcluster.notifications() == []


def test_the_custom_subject_is_rendered_with_json_e(dev_taskcluster):
    subject = "cib: ${task.metadata.name} ${status.state} (${taskId})"
    task_id = created(dev_taskcluster, routes=["notify.matrix-room.!room:example.com.on-resolved",
                                               f"notify.email.{OWNER}.on-completed"],
                      extra={"notify": {"email": {"subject": subject}}})
    dev_taskcluster.resolve_task(task_id, "completed")
    messages = dev_taskcluster.notifications()
    assert [(m["kind"], m["target"]) for m in messages] == [
        ("matrix-room", "!room:example.com"), ("email", OWNER)]
    assert {m["subject"] for m in messages} == {f"cib: a task completed ({task_id})"}


def test_reset_forgets_the_notifications(dev_taskcluster):
    dev_taskcluster.resolve_task(created(dev_taskcluster, routes=ROUTES), "failed")
    dev_taskcluster.reset()
    assert dev_taskcluster.notifications() == []


def test_routes_other_than_notify_ones_are_not_parsed():
    assert parse_route("notify.email.a.b@c.d.on-failed") == ("email", "a.b@c.d", "on-failed")
    assert parse_route("index.notify.email.x.on-failed") is None
    assert parse_route("notify.sms.123.on-failed") is None
    assert parse_route("notify.email.on-failed") is None

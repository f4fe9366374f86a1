"""Taskcluster errors become ours in one place (tc.failure), the same for every service: lost
connections and 5xx are transient (exit 75), a 403 names the scopes the caller lacks as the
service's reply lists them, other refusals keep the service's status and message. Checked
against the local Taskcluster, whose replies have the real services' shape (lib-api)."""

from __future__ import annotations

import pytest
from taskcluster.exceptions import TaskclusterConnectionError, TaskclusterRestFailure

import taskcluster
from cib_decision.errors import CibError, TransientError
from cib_decision.tc import failure, missing_scopes


def refusal(call):
    with pytest.raises(taskcluster.exceptions.TaskclusterFailure) as info:
        call()
    return info.value


def test_a_403_names_the_scope_the_caller_lacks(dev_taskcluster):
    index = taskcluster.Index(dev_taskcluster.options("pull-request", max_retries=0))
    exc = refusal(lambda: index.insertTask("cib.v2.cib-decision.some.where", {
        "taskId": "fN1SbArXTPSVFNUvaOlinQ", "rank": 0, "data": {},
        "expires": "2099-01-01T00:00:00.000Z"}))
    assert missing_scopes(exc) == "index:insert-task:cib.v2.cib-decision.some.where"
    error = failure("the index", "write a pointer", exc)
    assert type(error) is CibError
    assert str(error) == ("the index refused to write a pointer (403): insufficient scopes: the "
                          "credentials lack index:insert-task:cib.v2.cib-decision.some.where")


def test_other_refusals_keep_the_services_status_and_first_line(dev_taskcluster):
    queue = taskcluster.Queue(dev_taskcluster.options(max_retries=0))
    exc = refusal(lambda: queue.task("fN1SbArXTPSVFNUvaOlinQ"))
    error = failure("the queue", "read task fN1SbArXTPSVFNUvaOlinQ", exc)
    assert str(error).startswith("the queue refused to read task fN1SbArXTPSVFNUvaOlinQ (404): ")
    assert "\n" not in str(error)


@pytest.mark.parametrize("exc", [
    TaskclusterConnectionError("connection reset", None),
    TaskclusterRestFailure("gateway timeout", None, 504, {"message": "gateway timeout"}),
])
def test_lost_connections_and_server_errors_are_transient(exc):
    error = failure("worker-manager", "list the worker pools", exc, CibError)
    assert isinstance(error, TransientError)
    assert str(error).startswith("worker-manager failed to list the worker pools")


def test_an_expression_the_caller_cannot_satisfy_is_named_in_one_line():
    exc = TaskclusterRestFailure("no", None, 403, {"message": (
        "Client ID x does not have sufficient scopes and is missing the following scopes:\n\n"
        '```\n{\n  "AnyOf": [\n    "a:b",\n    "c:d"\n  ]\n}\n```\n\nThis request requires ...'
        "\n\n---\n\n* method: x")})
    assert missing_scopes(exc) == '{"AnyOf": ["a:b", "c:d"]}'

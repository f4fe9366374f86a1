"""The local Taskcluster's queue behaves like the real one: createTask's checks and defaults,
task groups, batched statuses, idempotency; every reply valid against the genuine schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import slugid

import taskcluster
from cib_decision.devtc.testing import new_task

from .tcschemas import validator


def queue(tc, role=None, **options):
    return taskcluster.Queue({**tc.options(role), **options})


def rejected(call, *args, **kwargs):
    """The status code and body of a call the service refuses."""
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        call(*args, **kwargs)
    return info.value.status_code, info.value.body


def at(delta: timedelta) -> str:
    return taskcluster.stringDate(datetime.now(UTC) + delta)


def assert_valid(schema_id, instance):
    assert list(validator(schema_id).iter_errors(instance)) == []


def test_created_task_reads_back_with_defaults_and_a_pending_run(dev_taskcluster):
    q, task_id = queue(dev_taskcluster), slugid.nice()
    reply = q.createTask(task_id, new_task())

    assert_valid("/schemas/queue/v1/task-status-response.json", reply)
    status = reply["status"]
    assert (status["state"], status["taskGroupId"], status["retriesLeft"]) == (
        "pending", task_id, 5)
    assert status["runs"] == [{"runId": 0, "state": "pending", "reasonCreated": "scheduled",
                               "scheduled": status["runs"][0]["scheduled"]}]
    definition = q.task(task_id)
    assert_valid("/schemas/queue/v1/task.json", definition)
    assert {k: definition[k] for k in ("provisionerId", "workerType", "projectId", "priority",
                                       "retries", "requires", "routes", "scopes", "tags",
                                       "extra", "dependencies")} == {
        "provisionerId": "cib-3", "workerType": "decision", "projectId": "none",
        "priority": "lowest", "retries": 5, "requires": "all-completed", "routes": [],
        "scopes": [], "tags": {}, "extra": {}, "dependencies": []}
    assert q.status(task_id) == reply
    assert dev_taskcluster.tasks() == {task_id: definition}


def test_dates_are_stored_in_milliseconds_utc_and_expires_defaults_to_deadline_plus_a_year(
        dev_taskcluster):
    q, task_id = queue(dev_taskcluster), slugid.nice()
    now = datetime.now(UTC).replace(microsecond=123456)
    deadline = (now + timedelta(hours=2)).astimezone(timezone(timedelta(hours=2)))
    q.createTask(task_id, new_task(created=now.isoformat(), deadline=deadline.isoformat()))
    stored = q.task(task_id)
    assert stored["created"] == now.strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert stored["deadline"] == (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert stored["expires"] == (now + timedelta(hours=2)).replace(
        year=now.year + 1).strftime("%Y-%m-%dT%H:%M:%S.123Z")


def test_task_queue_id_and_provisioner_worker_type_complete_each_other(dev_taskcluster):
    q = queue(dev_taskcluster)
    a, b = slugid.nice(), slugid.nice()
    q.createTask(a, new_task(taskQueueId=None, provisionerId="cib-3", workerType="linux"))
    q.createTask(b, new_task(taskQueueId="cib-3/linux"))
    for task_id in (a, b):
        definition = q.task(task_id)
        assert (definition["taskQueueId"], definition["provisionerId"],
                definition["workerType"]) == ("cib-3/linux", "cib-3", "linux")


@pytest.mark.parametrize("fields, message", [
    ({"provisionerId": "cib-3", "workerType": "other"}, "taskQueueId must match"),
    ({"taskQueueId": None}, "at least a provisionerId and a workerType or a taskQueueId"),
])
def test_inconsistent_or_missing_task_queue_is_an_input_error(dev_taskcluster, fields, message):
    status, body = rejected(queue(dev_taskcluster).createTask, slugid.nice(), new_task(**fields))
    assert (status, body["code"]) == (400, "InputError")
    assert message in body["message"]


@pytest.mark.parametrize("fields, message", [
    ({"created": -timedelta(minutes=16)}, "`created` cannot be in the past"),
    ({"created": timedelta(minutes=16), "deadline": timedelta(hours=1)},
     "`created` cannot be in the future"),
    ({"created": timedelta(minutes=10), "deadline": timedelta(minutes=5)},
     "`deadline` cannot be later than `created`"),
    ({"created": -timedelta(minutes=10), "deadline": -timedelta(minutes=5)},
     "`deadline` cannot be in the past"),
    ({"deadline": timedelta(days=5, minutes=16)},
     "`deadline` cannot be more than 5 days into the future"),
    ({"expires": timedelta(minutes=30)}, "`expires` cannot be before `deadline`"),
])
def test_date_rules_are_input_errors(dev_taskcluster, fields, message):
    # the dates are taken when the test runs, not when it is collected: a loaded machine can
    # take minutes to get from one to the other
    dates = {name: at(delta) for name, delta in fields.items()}
    status, body = rejected(queue(dev_taskcluster).createTask, slugid.nice(), new_task(**dates))
    assert (status, body["code"]) == (400, "InputError")
    assert body["message"].startswith(message)


def test_deadline_up_to_five_days_and_fifteen_minutes_ahead_is_accepted(dev_taskcluster):
    task_id = slugid.nice()
    reply = queue(dev_taskcluster).createTask(
        task_id, new_task(deadline=at(timedelta(days=5, minutes=14))))
    assert reply["status"]["taskId"] == task_id


def test_error_body_has_code_message_and_request_info(dev_taskcluster):
    task_id = slugid.nice()
    body = new_task(taskQueueId=None)
    status, error = rejected(queue(dev_taskcluster).createTask, task_id, body)
    assert status == 400
    assert set(error) == {"code", "message", "requestInfo"}
    assert error["requestInfo"]["method"] == "createTask"
    assert error["requestInfo"]["params"] == {"taskId": task_id}
    assert error["requestInfo"]["payload"]["metadata"] == body["metadata"]
    assert "* errorCode:  InputError\n* statusCode: 400\n* time:" in error["message"]


def test_task_id_that_is_not_a_nice_slugid_is_an_invalid_request_argument(dev_taskcluster):
    for bad in ("tid-a", "abcdefghijklmnopqrstuv"):
        status, body = rejected(queue(dev_taskcluster).createTask, bad, new_task())
        assert (status, body["code"]) == (400, "InvalidRequestArguments")
        assert f"'taskId' given as '{bad}'" in body["message"]
    status, body = rejected(queue(dev_taskcluster).status, "tid-a")
    assert (status, body["code"]) == (400, "InvalidRequestArguments")


def test_schema_failures_are_input_validation_errors(dev_taskcluster):
    q = queue(dev_taskcluster)
    status, body = rejected(q.createTask, slugid.nice(), new_task(metadata=None))
    assert (status, body["code"]) == (400, "InputValidationError")
    assert "'metadata' is a required property" in body["message"]
    status, body = rejected(q.createTask, slugid.nice(), new_task(priority="urgent"))
    assert (status, body["code"]) == (400, "InputValidationError")
    status, body = rejected(q.createTask, slugid.nice(), new_task(unknownField=1))
    assert (status, body["code"]) == (400, "InputValidationError")


def test_body_that_is_not_json_is_a_malformed_payload(dev_taskcluster):
    url = f"{dev_taskcluster.root_url}/api/queue/v1/task/{slugid.nice()}"
    not_json = requests.put(url, data="{nope", headers={"Content-Type": "application/json"})
    wrong_type = requests.put(url, data="{}", headers={"Content-Type": "text/plain"})
    for response in (not_json, wrong_type):
        assert (response.status_code, response.json()["code"]) == (400, "MalformedPayload")


def test_unknown_task_is_not_found(dev_taskcluster):
    q, task_id = queue(dev_taskcluster), slugid.nice()
    for call in (q.task, q.status):
        status, body = rejected(call, task_id)
        assert (status, body["code"]) == (404, "ResourceNotFound")


def test_identical_re_create_returns_the_current_status_and_creates_nothing(dev_taskcluster):
    q, task_id, body = queue(dev_taskcluster), slugid.nice(), new_task()
    first = q.createTask(task_id, body)
    dev_taskcluster.resolve_task(task_id)
    again = q.createTask(task_id, body)
    assert again["status"]["state"] == "completed"
    assert again["status"]["runs"][0]["scheduled"] == first["status"]["runs"][0]["scheduled"]
    assert dev_taskcluster.stats()["tasksCreated"] == 1


def test_re_create_with_another_definition_is_a_conflict(dev_taskcluster):
    q, task_id, body = queue(dev_taskcluster), slugid.nice(), new_task()
    q.createTask(task_id, body)
    for changed in ({**body, "payload": {"x": 1}}, new_task()):  # new_task: another `created`
        status, error = rejected(q.createTask, task_id, changed)
        assert (status, error["code"]) == (409, "RequestConflict")
        assert "already used by another task" in error["message"]


def test_re_create_with_equal_dates_in_another_notation_is_idempotent(dev_taskcluster):
    q, task_id = queue(dev_taskcluster), slugid.nice()
    now = datetime.now(UTC).replace(microsecond=0)
    deadline = now + timedelta(hours=1)
    q.createTask(task_id, new_task(created=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   deadline=deadline.strftime("%Y-%m-%dT%H:%M:%SZ")))
    reply = q.createTask(task_id, new_task(
        created=now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        deadline=deadline.astimezone(timezone(timedelta(hours=-5))).isoformat()))
    assert reply["status"]["taskId"] == task_id


def test_a_task_group_holds_one_scheduler_id(dev_taskcluster):
    q, group = queue(dev_taskcluster), slugid.nice()
    q.createTask(group, new_task(schedulerId="cib-level-3"))
    status, body = rejected(q.createTask, slugid.nice(),
                            new_task(taskGroupId=group, schedulerId="cib-level-1"))
    assert (status, body["code"]) == (409, "RequestConflict")
    assert "schedulerId other\nthan `cib-level-1`" in body["message"]
    assert q.createTask(slugid.nice(), new_task(taskGroupId=group))["status"]["state"] == (
        "pending")


def test_dependencies_must_exist(dev_taskcluster):
    q, missing, task_id = queue(dev_taskcluster), slugid.nice(), slugid.nice()
    status, body = rejected(q.createTask, task_id, new_task(dependencies=[missing]))
    assert (status, body["code"]) == (400, "InputError")
    assert f"references non-existing tasks: \n * {missing}" in body["message"]
    assert rejected(q.task, task_id)[0] == 404


def test_dependencies_must_not_expire_before_the_deadline(dev_taskcluster):
    q, early = queue(dev_taskcluster), slugid.nice()
    q.createTask(early, new_task(expires=at(timedelta(hours=1, minutes=1))))
    status, body = rejected(q.createTask, slugid.nice(), new_task(
        dependencies=[early], deadline=at(timedelta(hours=2))))
    assert (status, body["code"]) == (400, "InputError")
    assert "references tasks that expires\nbefore `task.deadline`" in body["message"]
    assert f" * {early}," in body["message"]


def test_task_waits_unscheduled_until_its_dependencies_complete(dev_taskcluster):
    q, first, second, third = queue(dev_taskcluster), *(slugid.nice() for _ in range(3))
    q.createTask(first, new_task())
    q.createTask(second, new_task())
    reply = q.createTask(third, new_task(dependencies=[first, second]))
    assert (reply["status"]["state"], reply["status"]["runs"]) == ("unscheduled", [])
    dev_taskcluster.resolve_task(first)
    assert q.status(third)["status"]["state"] == "unscheduled"
    dev_taskcluster.resolve_task(second)
    assert q.status(third)["status"]["state"] == "pending"


def test_failed_dependency_blocks_all_completed_but_not_all_resolved(dev_taskcluster):
    q, dependency = queue(dev_taskcluster), slugid.nice()
    q.createTask(dependency, new_task())
    strict, lenient = slugid.nice(), slugid.nice()
    q.createTask(strict, new_task(dependencies=[dependency]))
    q.createTask(lenient, new_task(dependencies=[dependency], requires="all-resolved"))
    dev_taskcluster.resolve_task(dependency, "failed")
    assert q.status(strict)["status"]["state"] == "unscheduled"
    assert q.status(lenient)["status"]["state"] == "pending"


def test_task_whose_dependencies_already_completed_is_pending_at_once(dev_taskcluster):
    q, dependency, task_id = queue(dev_taskcluster), slugid.nice(), slugid.nice()
    q.createTask(dependency, new_task())
    dev_taskcluster.resolve_task(dependency)
    assert q.createTask(task_id, new_task(dependencies=[dependency]))["status"]["state"] == (
        "pending")


def test_scopes_ending_in_double_star_are_refused(dev_taskcluster):
    status, body = rejected(queue(dev_taskcluster).createTask, slugid.nice(),
                            new_task(scopes=["secrets:get:**"]))
    assert (status, body["code"]) == (400, "InputError")


def test_list_task_group_pages_through_every_member(dev_taskcluster):
    q, group = queue(dev_taskcluster), slugid.nice()
    members = [group, *(slugid.nice() for _ in range(4))]
    for task_id in members:
        q.createTask(task_id, new_task(taskGroupId=group))
    first = q.listTaskGroup(group, query={"limit": 2})
    assert_valid("/schemas/queue/v1/list-task-group-response.json", first)
    assert len(first["tasks"]) == 2 and "continuationToken" in first
    pages = []
    q.listTaskGroup(group, query={"limit": 2}, paginationHandler=pages.append)
    assert [len(p["tasks"]) for p in pages] == [2, 2, 1]
    assert sorted(t["status"]["taskId"] for p in pages for t in p["tasks"]) == sorted(members)
    assert pages[0]["schedulerId"] == "cib-level-3"
    assert rejected(q.listTaskGroup, slugid.nice())[0] == 404


def test_pagination_options_are_checked(dev_taskcluster):
    q, group = queue(dev_taskcluster), slugid.nice()
    q.createTask(group, new_task())
    assert rejected(q.listTaskGroup, group, query={"limit": "many"})[1]["code"] == (
        "InvalidRequestArguments")
    assert rejected(q.listTaskGroup, group, query={"color": "blue"})[1]["code"] == (
        "InvalidRequestArguments")
    assert rejected(q.listTaskGroup, group, query={"continuationToken": "x"})[1]["code"] == (
        "InputError")


def test_statuses_batch_leaves_out_unknown_and_repeated_ids(dev_taskcluster):
    q, a, b = queue(dev_taskcluster), slugid.nice(), slugid.nice()
    q.createTask(a, new_task())
    q.createTask(b, new_task())
    reply = q.statuses({"taskIds": [a, slugid.nice(), b, a]})
    assert_valid("/schemas/queue/v1/tasks-statuses-response.json", reply)
    assert [s["taskId"] for s in reply["statuses"]] == [a, b]
    pages = []
    q.statuses(payload={"taskIds": [a, b]}, query={"limit": 1}, paginationHandler=pages.append)
    assert [[s["taskId"] for s in p["statuses"]] for p in pages] == [[a], [b]]


def test_a_deployment_serves_its_schemas_and_a_task_fetches_each_once(dev_taskcluster):
    """A task without a schema directory validates against `{rootUrl}/schemas/...`: fetched
    once per schema, however many tasks it validates."""
    from cib_decision.tcschemas import CREATE_TASK, SchemaStore

    root = dev_taskcluster.root_url
    served = requests.get(f"{root}/schemas/queue/v1/task.json")
    assert served.status_code == 200 and served.json()["$id"].startswith("/schemas/queue/v1/")
    assert requests.get(f"{root}/schemas/queue/v1/nothing.json").status_code == 404
    fetched: list[str] = []

    def fetch(url):
        fetched.append(url)
        return requests.get(url, timeout=10).json()

    store = SchemaStore.from_root_url(root, fetch)
    for _ in range(20):
        assert store.errors(CREATE_TASK, new_task()) == []
    assert store.errors(CREATE_TASK, {**new_task(), "priority": "urgent!"})
    assert fetched and len(fetched) == len(set(fetched))

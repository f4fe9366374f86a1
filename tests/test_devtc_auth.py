"""Who may call what on the local Taskcluster: Hawk credentials, the repository roles' clients,
the anonymous scopes, scope expressions rendered from references.json."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mohawk
import pytest
import requests
import slugid

import taskcluster
from cib_decision.devtc import DevTaskcluster
from cib_decision.devtc.expressions import render, satisfied, template_params, unsatisfied
from cib_decision.devtc.testing import new_task, require_schemas


def rejected(call, *args, **kwargs):
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        call(*args, **kwargs)
    return info.value.status_code, info.value.body


def test_wrong_access_token_or_unknown_client_fails_authentication(dev_taskcluster):
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task())
    for credentials in ({**dev_taskcluster.root_credentials, "accessToken": "wrong"},
                        {"clientId": "nobody", "accessToken": "x"}):
        q = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "credentials": credentials,
                               "maxRetries": 0})
        with pytest.raises(taskcluster.TaskclusterAuthFailure) as info:
            q.status(task_id)  # even a call anonymous callers may make
        assert (info.value.status_code, info.value.body["code"]) == (401,
                                                                     "AuthenticationFailed")


def test_a_signature_over_another_body_fails_authentication(dev_taskcluster):
    task_id, body = slugid.nice(), new_task()
    url = f"{dev_taskcluster.root_url}/api/queue/v1/task/{task_id}"
    signed = taskcluster.utils.dumpJson(body)
    header = mohawk.Sender(
        credentials={"id": dev_taskcluster.root_credentials["clientId"],
                     "key": dev_taskcluster.root_credentials["accessToken"],
                     "algorithm": "sha256"},
        url=url, method="PUT", content=signed, content_type="application/json").request_header
    tampered = signed.replace('"payload":{}', '"payload":{"x":1}')
    response = requests.put(url, data=tampered, headers={
        "Authorization": header, "Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (401, "AuthenticationFailed")
    assert dev_taskcluster.tasks() == {}
    genuine = requests.put(url, data=signed, headers={
        "Authorization": header, "Content-Type": "application/json"})
    assert genuine.status_code == 200


def test_callers_without_credentials_hold_the_anonymous_read_scopes(dev_taskcluster):
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task())
    anonymous = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "maxRetries": 0})
    assert anonymous.status(task_id)["status"]["taskId"] == task_id
    assert anonymous.task(task_id)["taskQueueId"] == "cib-3/decision"
    wm = taskcluster.WorkerManager({"rootUrl": dev_taskcluster.root_url, "maxRetries": 0})
    assert wm.listWorkerPools()["workerPools"] == []
    status, body = rejected(anonymous.createTask, slugid.nice(), new_task())
    assert (status, body["code"]) == (403, "InsufficientScopes")
    assert body["message"].startswith("This request requires Taskcluster credentials")


def test_branch_role_may_create_its_tasks(dev_taskcluster):
    q = taskcluster.Queue(dev_taskcluster.options("branch:main"))
    reply = q.createTask(slugid.nice(), new_task(
        priority="highest", routes=["checks", "index.cib.v2.cib-decision.cache.level-3.x"],
        scopes=["secrets:get:project/cib/level-3/azure"]))
    assert reply["status"]["state"] == "pending"


def test_pull_request_role_lacks_level_3_and_the_error_names_what_is_missing(dev_taskcluster):
    q = taskcluster.Queue(dev_taskcluster.options("pull-request"))
    status, body = rejected(q.createTask, slugid.nice(), new_task(routes=["checks"]))
    assert (status, body["code"]) == (403, "InsufficientScopes")
    missing = body["message"].split("```")[1]
    assert "queue:scheduler-id:cib-level-3" in missing
    assert "queue:create-task:lowest:cib-3/decision" in missing
    assert "queue:route:checks" not in missing
    assert q.createTask(slugid.nice(), new_task(
        schedulerId="cib-level-1", taskQueueId="cib-1/decision"))["status"]["state"] == "pending"


def test_a_cron_jobs_role_resolves_from_its_entry_in_the_roles_file(dev_taskcluster):
    nightly = dev_taskcluster.credentials("cron:nightly")
    assert nightly != dev_taskcluster.credentials("branch:main")
    q = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "credentials": nightly})
    assert q.createTask(slugid.nice(), new_task())["status"]["state"] == "pending"
    with pytest.raises(KeyError):
        dev_taskcluster.credentials("no-such-role")


def test_untrusted_pull_requests_may_create_only_their_very_low_config_check(dev_taskcluster):
    q = taskcluster.Queue(dev_taskcluster.options("pull-request-untrusted"))
    # the decision task the GitHub service creates for them: very-low, cib-1/decision, checks
    q.createTask(slugid.nice(), new_task(schedulerId="cib-level-1", priority="very-low",
                                         taskQueueId="cib-1/decision", routes=["checks"]))
    for fields in ({"priority": "low"}, {"taskQueueId": "cib-1/images"},
                   {"routes": ["index.cib.v2.images.latest"]}):
        body = new_task(**{"schedulerId": "cib-level-1", "priority": "very-low",
                           "taskQueueId": "cib-1/decision", **fields})
        status, _ = rejected(q.createTask, slugid.nice(), body)
        assert status == 403, fields


@pytest.fixture(scope="module")
def narrow():
    """A deployment whose only role may create `low` (or lower) priority tasks."""
    require_schemas()
    roles = {"low": ["queue:scheduler-id:s", "queue:create-task:project:none",
                     "queue:create-task:low:p/w", "worker-manager:manage-worker-pool:p/*"]}
    with DevTaskcluster(roles=roles) as tc:
        yield tc


@pytest.mark.parametrize("priority, allowed", [
    ("lowest", True), ("low", True), ("medium", False), ("highest", False)])
def test_a_priority_scope_permits_that_priority_and_every_lower_one(narrow, priority, allowed):
    q = taskcluster.Queue(narrow.options("low"))
    body = new_task(schedulerId="s", taskQueueId="p/w", priority=priority)
    if allowed:
        assert q.createTask(slugid.nice(), body)["status"]["state"] == "pending"
    else:
        assert rejected(q.createTask, slugid.nice(), body)[0] == 403


def test_worker_pool_calls_need_the_provider_scope_too(narrow):
    wm = taskcluster.WorkerManager(narrow.options("low"))
    status, body = rejected(wm.createWorkerPool, "p/pool", {
        "providerId": "aws", "description": "", "owner": "a@example.com",
        "emailOnError": False, "config": {"minCapacity": 0, "maxCapacity": 1,
                                          "launchConfigs": []}})
    assert (status, body["code"]) == (403, "InsufficientScopes")
    assert "worker-manager:provider:aws" in body["message"].split("```")[1]


def test_authorized_scopes_narrow_what_a_client_may_do(dev_taskcluster):
    q = taskcluster.Queue({**dev_taskcluster.options(),
                           "authorizedScopes": ["queue:create-task:project:none"]})
    assert rejected(q.createTask, slugid.nice(), new_task())[0] == 403
    q = taskcluster.Queue({**dev_taskcluster.options("pull-request"),
                           "authorizedScopes": ["queue:scheduler-id:cib-level-3"]})
    with pytest.raises(taskcluster.TaskclusterAuthFailure):
        q.createTask(slugid.nice(), new_task())


def test_temporary_credentials_carry_their_scopes(dev_taskcluster):
    root = dev_taskcluster.root_credentials
    now = datetime.now(UTC)
    scopes = ["queue:scheduler-id:cib-level-3", "queue:create-task:project:none",
              "queue:create-task:lowest:cib-3/decision"]
    temporary = taskcluster.createTemporaryCredentials(
        root["clientId"], root["accessToken"], now - timedelta(minutes=1),
        now + timedelta(hours=1), scopes)
    q = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "credentials": temporary,
                           "maxRetries": 0})
    assert q.createTask(slugid.nice(), new_task())["status"]["state"] == "pending"
    assert rejected(q.createTask, slugid.nice(), new_task(priority="low"))[0] == 403
    forged = {**temporary, "accessToken": "not-derived-from-the-issuer"}
    with pytest.raises(taskcluster.TaskclusterAuthFailure):
        taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "credentials": forged,
                           "maxRetries": 0}).createTask(slugid.nice(), new_task())


CREATE_TASK = {"AllOf": [
    {"each": "<scope>", "for": "scope", "in": "scopes"},
    {"each": "queue:route:<route>", "for": "route", "in": "routes"},
    "queue:create-task:project:<projectId>", "queue:scheduler-id:<schedulerId>",
    {"AnyOf": [{"each": "queue:create-task:<priority>:<provisionerId>/<workerType>",
                "for": "priority", "in": "priorities"}]}]}


def test_template_renders_loops_and_needs_only_body_parameters():
    assert template_params(CREATE_TASK) == {"scopes", "routes", "projectId", "schedulerId",
                                            "priorities", "provisionerId", "workerType"}
    expression = render(CREATE_TASK, {
        "scopes": ["a"], "routes": ["r1", "r2"], "projectId": "none", "schedulerId": "s",
        "priorities": ["highest", "very-high"], "provisionerId": "p", "workerType": "w"})
    assert expression == {"AllOf": [
        "a", "queue:route:r1", "queue:route:r2", "queue:create-task:project:none",
        "queue:scheduler-id:s",
        {"AnyOf": ["queue:create-task:highest:p/w", "queue:create-task:very-high:p/w"]}]}


def test_if_then_else_template_follows_its_boolean():
    template = {"if": "levelIsReadOnly", "then": {"AnyOf": ["ro:<b>", "rw:<b>"]},
                "else": "rw:<b>"}
    assert render(template, {"levelIsReadOnly": True, "b": "x"}) == {"AnyOf": ["ro:x", "rw:x"]}
    assert render(template, {"levelIsReadOnly": False, "b": "x"}) == "rw:x"
    assert render({"if": "f", "then": "s"}, {"f": False}) is None


def test_star_grants_a_prefix_and_unsatisfied_names_only_what_is_missing():
    expression = {"AllOf": ["queue:route:a", "queue:route:b",
                            {"AnyOf": ["x:high", "x:lowest"]}]}
    assert satisfied(["queue:route:*", "x:lowest"], expression)
    assert not satisfied(["queue:route:a", "x:*"], expression)
    assert unsatisfied(["queue:route:a"], expression) == {
        "AllOf": ["queue:route:b", {"AnyOf": ["x:high", "x:lowest"]}]}
    assert unsatisfied(["queue:route:a", "queue:route:b"], {"AnyOf": []}) == {"AnyOf": []}


def test_task_credentials_hold_the_task_scopes_with_repository_roles_expanded(dev_taskcluster):
    decision = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(decision, new_task(
        scopes=["assume:repo:github.com/example/images:branch:main"]))
    claimed = dev_taskcluster.task_credentials(decision)
    credentials = claimed["credentials"]
    assert credentials["clientId"].startswith(f"task-client/{decision}/0/on/")
    assert claimed["status"]["state"] == "running"
    q = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "credentials": credentials,
                           "maxRetries": 0})
    allowed = new_task(taskGroupId=decision, routes=["tc-treeherder.v2.images.abc.0"])
    assert q.createTask(slugid.nice(), allowed)["status"]["state"] == "pending"
    other_project = new_task(taskGroupId=decision, routes=["tc-treeherder.v2.other.abc.0"])
    assert rejected(q.createTask, slugid.nice(), other_project)[0] == 403
    level_1 = new_task(schedulerId="cib-level-1", taskQueueId="cib-1/decision")
    assert rejected(q.createTask, slugid.nice(), level_1)[0] == 403


def test_task_credentials_over_http_and_resolution_keeps_the_claimed_run(dev_taskcluster):
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task())
    claimed = requests.post(f"{dev_taskcluster.root_url}/dev/task-credentials/{task_id}").json()
    assert set(claimed["credentials"]) == {"clientId", "accessToken", "certificate"}
    started = claimed["status"]["runs"][0]["started"]
    status = dev_taskcluster.resolve_task(task_id)
    assert (status["state"], status["runs"][0]["started"]) == ("completed", started)
    again = requests.post(f"{dev_taskcluster.root_url}/dev/task-credentials/{task_id}")
    assert again.status_code == 409


def test_current_scopes_are_the_callers_expanded_and_restricted_scopes(dev_taskcluster):
    """What taskgraph's action callback asks through a task's proxy before it acts."""
    import taskcluster

    role = "assume:repo:github.com/example/images:action:promote"
    restricted = taskcluster.Auth({**dev_taskcluster.options(), "authorizedScopes": [role]})
    scopes = restricted.currentScopes()["scopes"]
    assert role in scopes and "queue:scheduler-id:cib-level-3" in scopes
    assert "*" not in scopes
    assert taskcluster.Auth(dev_taskcluster.options()).currentScopes()["scopes"] == ["*"]

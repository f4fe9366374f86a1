"""The local secrets service, through the official `taskcluster.Secrets` client: set, get,
remove and list with the real API's routes, scopes, schemas and status codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import slugid
from taskcluster.exceptions import TaskclusterRestFailure

import taskcluster
from cib_decision.cli import main
from cib_decision.devtc.testing import new_task, require_schemas

from .devtc_support import dev_taskcluster_process

NAME = "project/cib/level-3/release-signing"


def secrets_client(tc, scopes: list[str] | None = None) -> taskcluster.Secrets:
    """A client holding `scopes` (temporary credentials issued by root), or root's."""
    credentials = tc.root_credentials
    if scopes is not None:
        credentials = taskcluster.createTemporaryCredentials(
            credentials["clientId"], credentials["accessToken"],
            datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC) + timedelta(hours=1),
            scopes)
    return taskcluster.Secrets({"rootUrl": tc.root_url, "credentials": credentials,
                                "maxRetries": 0})


def in_a_day() -> str:
    return taskcluster.stringDate(datetime.now(UTC) + timedelta(days=1))


def test_a_secret_set_with_the_set_scope_is_read_with_the_get_scope(dev_taskcluster):
    writer = secrets_client(dev_taskcluster, [f"secrets:set:{NAME}"])
    reader = secrets_client(dev_taskcluster, [f"secrets:get:{NAME}"])
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    assert writer.set(NAME, {"secret": {"key": "v1"},
                             "expires": taskcluster.stringDate(expires)}) == {}
    writer.set(NAME, {"secret": {"key": "v2", "n": [1, 2]},
                      "expires": taskcluster.stringDate(expires)})
    answer = reader.get(NAME)
    assert answer == {"secret": {"key": "v2", "n": [1, 2]},
                      "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z")}


def test_get_without_the_scope_is_403_whether_or_not_the_secret_exists(dev_taskcluster):
    dev_taskcluster.set_secret(NAME, {"key": "v"})
    writer_only = secrets_client(dev_taskcluster, [f"secrets:set:{NAME}"])
    for name in (NAME, "project/cib/level-3/absent"):
        with pytest.raises(TaskclusterRestFailure) as failure:
            writer_only.get(name)
        assert failure.value.status_code == 403
        assert f"secrets:get:{name}" in failure.value.body["message"]


def test_a_missing_secret_is_404_secret_not_found(dev_taskcluster):
    with pytest.raises(TaskclusterRestFailure) as failure:
        secrets_client(dev_taskcluster).get("project/cib/level-3/absent")
    assert failure.value.status_code == 404
    assert failure.value.body["code"] == "ResourceNotFound"
    assert failure.value.body["message"].startswith("Secret not found")


def test_an_expired_secret_is_404_and_not_listed(dev_taskcluster):
    client = secrets_client(dev_taskcluster)
    client.set(NAME, {"secret": {"key": "v"},
                      "expires": taskcluster.stringDate(datetime.now(UTC) - timedelta(hours=2))})
    with pytest.raises(TaskclusterRestFailure) as failure:
        client.get(NAME)
    assert failure.value.status_code == 404
    assert client.list() == {"secrets": []}
    assert NAME in dev_taskcluster.secrets()  # stored all the same, as the database keeps it


def test_set_validates_the_body_against_the_secret_schema(dev_taskcluster):
    client = secrets_client(dev_taskcluster)
    for body in ({"secret": "a string", "expires": in_a_day()}, {"secret": {}},
                 {"secret": {}, "expires": in_a_day(), "extra": 1}):
        with pytest.raises(TaskclusterRestFailure) as failure:
            client.set(NAME, body)
        assert failure.value.status_code == 400
        assert failure.value.body["code"] == "InputValidationError"
    assert dev_taskcluster.secrets() == {}


def test_remove_needs_the_set_scope_and_succeeds_for_a_missing_secret(dev_taskcluster):
    dev_taskcluster.set_secret(NAME, {"key": "v"})
    with pytest.raises(TaskclusterRestFailure) as failure:
        secrets_client(dev_taskcluster, [f"secrets:get:{NAME}"]).remove(NAME)
    assert failure.value.status_code == 403
    writer = secrets_client(dev_taskcluster, ["secrets:set:project/cib/*"])
    assert writer.remove(NAME) == {}
    assert writer.remove(NAME) == {}
    assert dev_taskcluster.secrets() == {}


def test_list_pages_with_continuation_tokens_and_needs_no_credentials(dev_taskcluster):
    names = [f"project/cib/s{i:02d}" for i in range(7)]
    for name in reversed(names):
        dev_taskcluster.set_secret(name, {"i": name})
    anonymous = taskcluster.Secrets({"rootUrl": dev_taskcluster.root_url, "maxRetries": 0})
    seen, query, pages = [], {"limit": "3"}, 0
    while True:
        page = anonymous.list(query=query)
        seen += page["secrets"]
        pages += 1
        if "continuationToken" not in page:
            break
        query = {"limit": "3", "continuationToken": page["continuationToken"]}
    assert seen == names and pages == 3


def test_a_task_reads_a_secret_its_role_grants_with_its_task_credentials(dev_taskcluster):
    dev_taskcluster.set_secret(NAME, {"key": "v"})
    task_id = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options("branch:main"))
    queue.createTask(task_id, new_task(taskQueueId="cib-3/images",
                                       scopes=["secrets:get:project/cib/level-3/*"]))
    credentials = dev_taskcluster.task_credentials(task_id)["credentials"]
    client = taskcluster.Secrets({"rootUrl": dev_taskcluster.root_url,
                                  "credentials": credentials, "maxRetries": 0})
    assert client.get(NAME)["secret"] == {"key": "v"}
    with pytest.raises(TaskclusterRestFailure) as failure:
        client.get("project/cib/level-1/other")
    assert failure.value.status_code == 403


def test_reset_forgets_the_secrets(dev_taskcluster):
    dev_taskcluster.set_secret(NAME, {"key": "v"})
    dev_taskcluster.reset()
    assert dev_taskcluster.secrets() == {}


def test_cib_dev_taskcluster_serves_the_secrets_given_with_secret(tmp_path):
    require_schemas()
    value = tmp_path / "clouds.json"
    value.write_text(json.dumps({"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}))
    with dev_taskcluster_process("--secret", f"project/cib/level-3/clouds={value}") as (
            root_url, lines):
        assert "secrets: project/cib/level-3/clouds\n" in lines
        client = taskcluster.Secrets({"rootUrl": root_url, "maxRetries": 0, "credentials": {
            "clientId": "static/taskcluster/root", "accessToken": "sekrit"}})
        assert client.get("project/cib/level-3/clouds")["secret"]["aws_access_key_id"] == "AKIA"


@pytest.mark.parametrize("content, problem", [
    (None, "cannot read"), ("{not json", "is not JSON"), ("[1]", "holds a JSON list")])
def test_a_secret_file_that_is_not_a_json_object_is_an_error_with_status_2(
        tmp_path, capsys, content, problem):
    require_schemas()
    path = tmp_path / "secret.json"
    if content is not None:
        path.write_text(content)
    assert main(["dev-taskcluster", "--secret", f"a/b={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --secret a/b: ") and problem in err

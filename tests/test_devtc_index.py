"""The local index and artifacts, and the dev hooks that act as a worker: a completed task is
indexed at its `index.*` routes and its artifacts are served the way the real services redirect
to them, so taskgraph's own lookups work against the local Taskcluster unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
import requests
import slugid
from referencing import Registry
from referencing.jsonschema import DRAFT6
from taskgraph.optimize.strategies import IndexSearch
from taskgraph.util import taskcluster as tg

import taskcluster
from cib_decision.devtc.harness import references_path
from cib_decision.devtc.testing import new_task
from cib_decision.tcschemas import SchemaStore, find_schema_dir

ROUTE = "index.cib.v2.cib-decision.cache.level-3.disk-image.win10-64.0db6007fdb28"
PATH = ROUTE[len("index."):]


@cache
def index_schemas() -> SchemaStore:
    """The index schemas, which only references.json holds."""
    documents = json.loads(references_path(find_schema_dir()).read_text())
    schemas = [d["content"] for d in documents if d["filename"].startswith("schemas/index/")]
    return SchemaStore(Registry().with_resources(
        (s["$id"].rstrip("#"), DRAFT6.create_resource(s)) for s in schemas))


def assert_valid(schema_id, instance):
    assert index_schemas().errors(schema_id, instance) == []


def completed(tc, routes=(ROUTE,), artifacts=None, **fields) -> str:
    task_id = slugid.nice()
    taskcluster.Queue(tc.options()).createTask(task_id, new_task(routes=list(routes), **fields))
    tc.resolve_task(task_id, artifacts=artifacts)
    return task_id


def test_completed_task_is_indexed_at_its_index_routes(dev_taskcluster):
    task_id = completed(dev_taskcluster, routes=[ROUTE, "checks", "index.cib.v2.latest"])
    index = taskcluster.Index(dev_taskcluster.options())
    found = index.findTask(PATH)
    assert_valid("/schemas/index/v1/indexed-task-response.json", found)
    assert (found["taskId"], found["namespace"], found["rank"], found["data"]) == (
        task_id, PATH, 0, {})
    assert found["expires"] == taskcluster.Queue(dev_taskcluster.options()).task(task_id)[
        "expires"]
    assert index.findTask("cib.v2.latest")["taskId"] == task_id


def test_failed_task_is_not_indexed(dev_taskcluster):
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task(routes=[ROUTE]))
    dev_taskcluster.resolve_task(task_id, "failed")
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        taskcluster.Index(dev_taskcluster.options()).findTask(PATH)
    assert (info.value.status_code, info.value.body["code"]) == (404, "ResourceNotFound")


def test_extra_index_sets_rank_data_and_expiry(dev_taskcluster):
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    completed(dev_taskcluster, extra={"index": {"rank": 5, "data": {"digest": "0db6"},
                                                "expires": expires}})
    found = taskcluster.Index(dev_taskcluster.options()).findTask(PATH)
    assert (found["rank"], found["data"], found["expires"]) == (5, {"digest": "0db6"}, expires)


def test_insert_task_keeps_the_higher_rank(dev_taskcluster):
    index = taskcluster.Index(dev_taskcluster.options())
    high, low = slugid.nice(), slugid.nice()
    expires = taskcluster.stringDate(datetime.now(UTC) + timedelta(days=1))
    entry = {"rank": 10, "data": {}, "expires": expires}
    index.insertTask("cib.v2.pinned", {**entry, "taskId": high})
    assert index.insertTask("cib.v2.pinned", {**entry, "taskId": low, "rank": 1})[
        "taskId"] == high
    assert index.insertTask("cib.v2.pinned", {**entry, "taskId": low})["taskId"] == low


def test_insert_task_needs_its_scope(dev_taskcluster):
    index = taskcluster.Index(dev_taskcluster.options("branch:main"))
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        index.insertTask("cib.v2.x", {"taskId": slugid.nice(), "rank": 0, "data": {},
                                      "expires": "2030-01-01T00:00:00.000Z"})
    assert info.value.status_code == 403
    assert "index:insert-task:cib.v2.x" in info.value.body["message"]


def test_expired_entries_are_not_found(dev_taskcluster):
    index = taskcluster.Index(dev_taskcluster.options())
    index.insertTask("cib.v2.old", {"taskId": slugid.nice(), "rank": 0, "data": {},
                                    "expires": "2020-01-01T00:00:00.000Z"})
    with pytest.raises(taskcluster.TaskclusterRestFailure):
        index.findTask("cib.v2.old")


def test_list_tasks_and_namespaces_page_through_a_namespace(dev_taskcluster):
    index = taskcluster.Index(dev_taskcluster.options())
    expires = taskcluster.stringDate(datetime.now(UTC) + timedelta(days=1))
    for name in ("a", "b", "c", "deeper.d"):
        index.insertTask(f"cib.v2.{name}", {"taskId": slugid.nice(), "rank": 0, "data": {},
                                            "expires": expires})
    pages = []
    index.listTasks("cib.v2", query={"limit": 2}, paginationHandler=pages.append)
    for page in pages:
        assert_valid("/schemas/index/v1/list-tasks-response.json", page)
    assert [[t["namespace"] for t in p["tasks"]] for p in pages] == [
        ["cib.v2.a", "cib.v2.b"], ["cib.v2.c"]]
    namespaces = index.listNamespaces("cib")["namespaces"]
    assert [n["namespace"] for n in namespaces] == ["cib.v2"]


def test_artifacts_are_a_303_to_their_content(dev_taskcluster):
    task_id = completed(dev_taskcluster, artifacts={
        "public/disk-image.json": {"sha256": "ab" * 32}, "public/log.txt": "done\n"})
    q = taskcluster.Queue(dev_taskcluster.options())
    reply = q.getLatestArtifact(task_id, "public/disk-image.json")
    assert reply["storageType"] == "s3"
    assert requests.get(reply["url"]).json() == {"sha256": "ab" * 32}
    raw = requests.get(q.buildUrl("getArtifact", task_id, 0, "public/log.txt"),
                       allow_redirects=False)
    assert raw.status_code == 303 and raw.headers["location"] == raw.json()["url"]
    assert requests.get(raw.headers["location"]).text == "done\n"


def test_missing_artifacts_and_runs_are_not_found(dev_taskcluster):
    q = taskcluster.Queue(dev_taskcluster.options())
    pending = slugid.nice()
    q.createTask(pending, new_task())
    waiting = slugid.nice()
    q.createTask(waiting, new_task(dependencies=[pending]))
    for task_id, message in ((pending, "Artifact not found"),
                             (waiting, "Task doesn't have any runs"),
                             (slugid.nice(), "Task not found")):
        with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
            q.getLatestArtifact(task_id, "public/x.json")
        assert (info.value.status_code, info.value.body["message"].split("\n")[0]) == (
            404, message)


def test_private_artifacts_need_a_scope(dev_taskcluster):
    task_id = completed(dev_taskcluster, artifacts={"private/secret.json": {"k": 1}})
    anonymous = taskcluster.Queue({"rootUrl": dev_taskcluster.root_url, "maxRetries": 0})
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        anonymous.getLatestArtifact(task_id, "private/secret.json")
    assert info.value.status_code == 403
    reply = taskcluster.Queue(dev_taskcluster.options()).getLatestArtifact(
        task_id, "private/secret.json")
    assert requests.get(reply["url"]).json() == {"k": 1}


def test_index_redirects_to_the_artifact_signing_private_ones(dev_taskcluster):
    completed(dev_taskcluster, artifacts={"public/a.json": [1], "private/b.json": [2]})
    index = taskcluster.Index(dev_taskcluster.options())
    public = index.findArtifactFromTask(PATH, "public/a.json")["response"]
    assert public.status_code == 303 and "bewit=" not in public.headers["location"]
    assert requests.get(public.headers["location"]).json() == [1]
    private = index.findArtifactFromTask(PATH, "private/b.json")["response"]
    assert "bewit=" in private.headers["location"]
    assert requests.get(private.headers["location"]).json() == [2]
    tampered = private.headers["location"].replace("private%2Fb.json", "private%2Fc.json")
    assert requests.get(tampered).status_code == 401


def test_taskgraph_finds_indexed_tasks_their_status_and_artifacts(dev_taskcluster,
                                                                  taskgraph_env):
    task_id = completed(dev_taskcluster, artifacts={"public/disk-image.json": {"id": "img"}})
    assert tg.find_task_id(PATH) == task_id
    assert tg.status_task(task_id)["state"] == "completed"
    assert tg.get_artifact(task_id, "public/disk-image.json") == {"id": "img"}
    assert tg.get_artifact_from_index(PATH, "public/disk-image.json") == {"id": "img"}
    assert tg.find_task_id_batched([PATH, "cib.v2.nothing"]) == {PATH: task_id}
    assert set(tg.status_task_batched([task_id])) == {task_id}
    assert tg.list_tasks("cib.v2.cib-decision.cache.level-3.disk-image.win10-64") == [task_id]


def test_index_search_replaces_a_completed_task_but_not_a_failed_one(dev_taskcluster,
                                                                     taskgraph_env):
    deadline = taskcluster.stringDate(datetime.now(UTC) + timedelta(days=1))
    strategy = IndexSearch()
    assert strategy.should_replace_task(None, {}, deadline, [PATH]) is False
    task_id = completed(dev_taskcluster)
    assert strategy.should_replace_task(None, {}, deadline, [PATH]) == task_id
    failed = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(
        failed, new_task(routes=["index.cib.v2.failed"]))
    dev_taskcluster.resolve_task(failed, "failed")
    assert strategy.should_replace_task(None, {}, deadline, ["cib.v2.failed"]) is False


def test_exception_a_worker_may_retry_gets_a_new_run(dev_taskcluster):
    q, task_id = taskcluster.Queue(dev_taskcluster.options()), slugid.nice()
    q.createTask(task_id, new_task(retries=1))
    status = dev_taskcluster.resolve_task(task_id, "exception", reason="worker-shutdown")
    assert [(r["state"], r["reasonCreated"]) for r in status["runs"]] == [
        ("exception", "scheduled"), ("pending", "retry")]
    assert status["retriesLeft"] == 0
    status = dev_taskcluster.resolve_task(task_id, "exception", reason="worker-shutdown")
    assert status["state"] == "exception" and len(status["runs"]) == 2


def test_resolving_twice_or_an_unknown_task_is_refused(dev_taskcluster):
    task_id = completed(dev_taskcluster)
    with pytest.raises(ValueError, match="already completed"):
        dev_taskcluster.resolve_task(task_id)
    with pytest.raises(KeyError):
        dev_taskcluster.resolve_task(slugid.nice())
    with pytest.raises(ValueError):
        dev_taskcluster.resolve_task(slugid.nice(), "succeeded")


def test_dev_routes_resolve_count_and_reset_over_http(dev_taskcluster):
    root = dev_taskcluster.root_url
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task(routes=[ROUTE]))
    resolved = requests.post(f"{root}/dev/tasks/{task_id}/resolve", json={
        "state": "completed", "artifacts": {"public/x.json": {"a": 1}}})
    assert resolved.json()["state"] == "completed"
    assert taskcluster.Index(dev_taskcluster.options()).findTask(PATH)["taskId"] == task_id
    assert list(requests.get(f"{root}/dev/tasks").json()) == [task_id]
    stats = requests.get(f"{root}/dev/stats").json()
    assert stats["requests"] == {"queue.createTask": 1, "index.findTask": 1}
    assert stats["tasksCreated"] == 1
    assert requests.post(f"{root}/dev/tasks/{task_id}/resolve", json={}).status_code == 409
    requests.post(f"{root}/dev/reset")
    assert requests.get(f"{root}/dev/tasks").json() == {}
    assert requests.get(f"{root}/dev/stats").json()["requests"] == {}

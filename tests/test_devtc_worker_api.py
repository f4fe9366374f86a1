"""The local queue's worker interface and the object service, driven with the official client
as generic-worker drives the real ones: claimWork (long poll), reclaimTask, report*, claim and
deadline expiry, and artifacts of every storage type, read back through the queue and
taskgraph."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import slugid
import taskcluster.download
import taskcluster.upload
from taskgraph.util import taskcluster as tg

import taskcluster
from cib_decision.devtc.testing import new_task

QUEUE_ID = "cib-3/decision"
GROUP, WORKER = "dev-group", "worker-1"


def status_of(failure: pytest.ExceptionInfo) -> tuple[int, str]:
    """The status and first message line of a refused call."""
    return failure.value.status_code, failure.value.body["message"].split("\n")[0]


def soon(**delta: float) -> str:
    return taskcluster.stringDate(datetime.now(UTC) + timedelta(**delta))


def worker_queue(tc, queue_id: str = QUEUE_ID, worker_id: str = WORKER) -> taskcluster.Queue:
    """A queue client with the credentials worker-manager would give the worker."""
    return taskcluster.Queue({"rootUrl": tc.root_url, "maxRetries": 0,
                              "credentials": tc.worker_credentials(queue_id, GROUP, worker_id)})


def create(tc, **fields) -> str:
    task_id = slugid.nice()
    taskcluster.Queue(tc.options()).createTask(task_id, new_task(**fields))
    return task_id


def claim_work(queue: taskcluster.Queue, tasks: int = 1, worker_id: str = WORKER) -> list[dict]:
    return queue.claimWork(QUEUE_ID, {"workerGroup": GROUP, "workerId": worker_id,
                                      "tasks": tasks})["tasks"]


def claim_one(tc) -> dict:
    """Claim the next pending task as the worker; its claim."""
    claimed = claim_work(worker_queue(tc))
    assert len(claimed) == 1
    return claimed[0]


def task_queue(tc, claim: dict) -> taskcluster.Queue:
    """A queue client with a claim's task credentials, as the worker uses for the task."""
    return taskcluster.Queue({"rootUrl": tc.root_url, "maxRetries": 0,
                              "credentials": dict(claim["credentials"])})


def runs_of(tc, task_id: str) -> list[tuple]:
    return [(r["state"], r["reasonCreated"], r.get("reasonResolved"))
            for r in tc.statuses()[task_id]["runs"]]


# -- claiming and resolving ---------------------------------------------------------------


def test_claim_work_hands_out_highest_priority_then_oldest_with_task_credentials(
        dev_taskcluster):
    first = create(dev_taskcluster)
    urgent = create(dev_taskcluster, priority="high")
    last = create(dev_taskcluster)
    other_queue = create(dev_taskcluster, taskQueueId="cib-3/images")
    queue = worker_queue(dev_taskcluster)
    claimed = queue.claimWork(QUEUE_ID, {"workerGroup": GROUP, "workerId": WORKER, "tasks": 2})
    assert [c["status"]["taskId"] for c in claimed["tasks"]] == [urgent, first]
    claim = claimed["tasks"][0]
    assert claim["task"] == taskcluster.Queue(dev_taskcluster.options()).task(urgent)
    assert (claim["runId"], claim["workerGroup"], claim["workerId"]) == (0, GROUP, WORKER)
    assert claim["status"]["runs"][0]["state"] == "running"
    assert claim["takenUntil"] == claim["status"]["runs"][0]["takenUntil"]
    assert claim["credentials"]["clientId"].startswith(
        f"task-client/{urgent}/0/on/{GROUP}/{WORKER}/until/")
    assert [c["status"]["taskId"] for c in claim_work(queue, tasks=32)] == [last]
    assert dev_taskcluster.statuses()[other_queue]["state"] == "pending"


def test_claim_work_needs_the_queues_scope_and_the_workers_own_id(dev_taskcluster):
    create(dev_taskcluster)
    elsewhere = worker_queue(dev_taskcluster, queue_id="cib-3/images", worker_id="worker-9")
    for queue, worker_id, missing in (
            (elsewhere, "worker-9", "queue:claim-work:cib-3/decision"),
            (worker_queue(dev_taskcluster), "other", "queue:worker-id:dev-group/other")):
        with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
            claim_work(queue, worker_id=worker_id)
        assert refused.value.status_code == 403
        assert missing in refused.value.body["message"]
    assert [s["state"] for s in dev_taskcluster.statuses().values()] == ["pending"]


def test_claim_work_long_polls_until_a_run_becomes_pending(dev_taskcluster):
    dev_taskcluster.set_timeouts(claim_work_timeout=10)
    dependency = create(dev_taskcluster, taskQueueId="cib-3/images")
    dependent = create(dev_taskcluster, dependencies=[dependency])
    result: list[dict] = []
    poll = threading.Thread(target=lambda: result.extend(claim_work(
        worker_queue(dev_taskcluster))))
    started = time.monotonic()
    poll.start()
    time.sleep(0.3)
    assert not result
    dev_taskcluster.resolve_task(dependency)
    poll.join(5)
    assert [c["status"]["taskId"] for c in result] == [dependent]
    assert time.monotonic() - started < 3


def test_claim_work_answers_no_tasks_when_nothing_becomes_pending(dev_taskcluster):
    dev_taskcluster.set_timeouts(claim_work_timeout=0.3)
    started = time.monotonic()
    assert claim_work(worker_queue(dev_taskcluster)) == []
    assert 0.25 < time.monotonic() - started < 2


def test_reclaim_and_resolution_follow_the_queues_conflict_rules(dev_taskcluster):
    task_id = create(dev_taskcluster)
    claim = claim_one(dev_taskcluster)
    as_task = task_queue(dev_taskcluster, claim)
    reclaimed = as_task.reclaimTask(task_id, "0")
    assert reclaimed["takenUntil"] >= claim["takenUntil"]
    assert reclaimed["credentials"]["clientId"].startswith(f"task-client/{task_id}/0/on/")
    as_task = task_queue(dev_taskcluster, reclaimed)
    assert as_task.reportCompleted(task_id, "0")["status"]["state"] == "completed"
    assert as_task.reportCompleted(task_id, "0")["status"]["state"] == "completed"
    for refused_call, message in (
            (as_task.reportFailed, f"Run 0 of task `{task_id}` is not running or failed."),
            (as_task.reclaimTask, f"Run 0 on task `{task_id}` is resolved or not running.")):
        with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
            refused_call(task_id, "0")
        assert status_of(refused) == (409, message)
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        as_task.reportException(task_id, "0", {"reason": "internal-error"})
    assert refused.value.status_code == 409
    root = taskcluster.Queue(dev_taskcluster.options())
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        root.reportCompleted(task_id, "1")
    assert status_of(refused) == (404, f"Run 1 not found on task `{task_id}`.")


def test_task_credentials_resolve_only_their_own_run(dev_taskcluster):
    mine, other = create(dev_taskcluster), create(dev_taskcluster)
    claims = claim_work(worker_queue(dev_taskcluster), tasks=2)
    as_task = task_queue(dev_taskcluster, next(c for c in claims
                                               if c["status"]["taskId"] == mine))
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        as_task.reportCompleted(other, "0")
    assert refused.value.status_code == 403


def test_intermittent_task_is_retried_while_retries_are_left(dev_taskcluster):
    task_id = create(dev_taskcluster, retries=1)
    claim = claim_one(dev_taskcluster)
    as_task = task_queue(dev_taskcluster, claim)
    status = as_task.reportException(task_id, "0", {"reason": "intermittent-task"})["status"]
    assert (status["state"], status["retriesLeft"]) == ("pending", 0)
    assert as_task.reportException(task_id, "0", {"reason": "intermittent-task"})
    retry = claim_one(dev_taskcluster)
    assert retry["runId"] == 1
    task_queue(dev_taskcluster, retry).reportException(task_id, "1",
                                                       {"reason": "worker-shutdown"})
    assert runs_of(dev_taskcluster, task_id) == [
        ("exception", "scheduled", "intermittent-task"),
        ("exception", "task-retry", "worker-shutdown")]


def test_a_killed_workers_claim_expires_and_the_task_is_retried(dev_taskcluster):
    dev_taskcluster.set_timeouts(claim_timeout=0.5)
    task_id = create(dev_taskcluster, retries=1)
    claim = claim_one(dev_taskcluster)  # ... and the worker is never heard of again
    deadline = time.monotonic() + 5
    while dev_taskcluster.statuses()[task_id]["runs"][0]["state"] == "running":
        assert time.monotonic() < deadline, "the claim did not expire"
        time.sleep(0.1)
    assert runs_of(dev_taskcluster, task_id) == [
        ("exception", "scheduled", "claim-expired"), ("pending", "retry", None)]
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        task_queue(dev_taskcluster, claim).reportCompleted(task_id, "0")
    assert refused.value.status_code == 409
    assert claim_one(dev_taskcluster)["runId"] == 1


def test_deadline_exceeded_resolves_unfinished_tasks_and_unblocks_all_resolved_dependents(
        dev_taskcluster):
    dev_taskcluster.set_timeouts(deadline_delay=0)
    deadline = datetime.now(UTC) + timedelta(seconds=1.5)
    running = create(dev_taskcluster, deadline=taskcluster.stringDate(deadline))
    claim = claim_one(dev_taskcluster)
    blocked = create(dev_taskcluster, dependencies=[running],
                     deadline=taskcluster.stringDate(deadline))
    waiting = create(dev_taskcluster, dependencies=[running], requires="all-resolved",
                     taskQueueId="cib-3/images")
    time.sleep((deadline - datetime.now(UTC)).total_seconds() + 0.1)
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        task_queue(dev_taskcluster, claim).reclaimTask(running, "0")
    stored_deadline = dev_taskcluster.tasks()[running]["deadline"]
    assert status_of(refused) == (
        409, f"Task `{running}` can't be reclaimed past its deadline of {stored_deadline}.")
    dev_taskcluster.resolve_expired()
    assert runs_of(dev_taskcluster, running) == [("exception", "scheduled",
                                                  "deadline-exceeded")]
    assert runs_of(dev_taskcluster, blocked) == [("exception", "exception",
                                                  "deadline-exceeded")]
    assert dev_taskcluster.statuses()[waiting]["state"] == "pending"


def test_wait_for_task_group_returns_once_nothing_can_run_any_more(dev_taskcluster):
    group = slugid.nice()
    failing = create(dev_taskcluster, taskGroupId=group)
    never = create(dev_taskcluster, taskGroupId=group, dependencies=[failing])
    never_either = create(dev_taskcluster, taskGroupId=group, dependencies=[never])
    with pytest.raises(TimeoutError, match=failing):
        dev_taskcluster.wait_for_task_group(group, timeout=0.2)
    claim = claim_one(dev_taskcluster)
    threading.Timer(0.2, task_queue(dev_taskcluster, claim).reportFailed,
                    (failing, "0")).start()
    statuses = dev_taskcluster.wait_for_task_group(group, timeout=5)
    assert {t: s["state"] for t, s in statuses.items()} == {
        failing: "failed", never: "unscheduled", never_either: "unscheduled"}


# -- artifacts ----------------------------------------------------------------------------


@pytest.fixture
def running(dev_taskcluster):
    """A claimed task: (taskId, queue client with its task credentials)."""
    task_id = create(dev_taskcluster)
    return task_id, task_queue(dev_taskcluster, claim_one(dev_taskcluster))


def upload_object(tc, queue, task_id: str, name: str, data: bytes) -> dict:
    """Upload an object artifact as generic-worker does: createArtifact, the object service's
    upload with the returned credentials, finishArtifact."""
    created = queue.createArtifact(task_id, "0", name, {
        "storageType": "object", "contentType": "application/json", "expires": soon(days=1),
        "contentLength": len(data)})
    objects = taskcluster.Object({"rootUrl": tc.root_url,
                                  "credentials": dict(created["credentials"])})
    taskcluster.upload.uploadFromBuf(
        projectId=created["projectId"], name=created["name"], contentType="application/json",
        contentLength=len(data), expires=created["expires"], uploadId=created["uploadId"],
        objectService=objects, data=data, maxRetries=0)
    queue.finishArtifact(task_id, "0", name, {"uploadId": created["uploadId"]})
    return created


def test_object_artifacts_upload_inline_and_by_put_url_and_read_back_everywhere(
        dev_taskcluster, running, taskgraph_env):
    task_id, queue = running
    small = b'{"image": "ami-0123"}'
    large = b'{"padding": "' + b"x" * 20000 + b'"}'
    created = upload_object(dev_taskcluster, queue, task_id, "public/small.json", small)
    assert created["name"] == f"t/{task_id}/0/public/small.json"
    assert created["credentials"]["clientId"] == (
        f"artifact-upload/{task_id}/0/on/{GROUP}/{WORKER}")
    upload_object(dev_taskcluster, queue, task_id, "public/large.json", large)
    queue.reportCompleted(task_id, "0")
    reader = taskcluster.Queue(dev_taskcluster.options())
    redirect = reader.getLatestArtifact(task_id, "public/large.json")
    assert redirect["storageType"] == "object"
    assert requests.get(redirect["url"]).content == large
    assert tg.get_artifact(task_id, "public/small.json") == {"image": "ami-0123"}
    downloaded, content_type = taskcluster.download.downloadArtifactToBuf(
        taskId=task_id, runId=0, name="public/large.json", queueService=reader)
    assert (downloaded, content_type) == (large, "application/json")
    stored = dev_taskcluster.artifacts(task_id)
    assert (stored["public/small.json"]["content"], stored["public/small.json"]["present"]) == (
        small, True)
    metadata = taskcluster.Object(dev_taskcluster.options()).object(created["name"])
    assert metadata["hashes"]["sha256"] == hashlib.sha256(small).hexdigest()


def test_s3_artifacts_are_put_at_their_url_with_the_signed_content_type_and_any_encoding(
        dev_taskcluster, running, taskgraph_env):
    task_id, queue = running
    created = queue.createArtifact(task_id, "0", "public/build/manifest.json", {
        "storageType": "s3", "contentType": "application/json", "expires": soon(days=1)})
    assert created["storageType"] == "s3"
    wrong = requests.put(created["putUrl"], data=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 403
    put = requests.put(created["putUrl"], data=gzip.compress(b'{"ok": true}'),
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert put.status_code == 200
    queue.reportCompleted(task_id, "0")
    assert tg.get_artifact(task_id, "public/build/manifest.json") == {"ok": True}
    assert [a["name"] for a in tg.list_artifacts(task_id)] == ["public/build/manifest.json"]


def test_artifact_expiring_after_its_task_is_refused(dev_taskcluster, running):
    task_id, queue = running
    expires = taskcluster.Queue(dev_taskcluster.options()).task(task_id)["expires"]
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        queue.createArtifact(task_id, "0", "public/x.json", {
            "storageType": "s3", "contentType": "application/json",
            "expires": soon(days=400)})
    code, message = status_of(refused)
    assert code == 400
    assert message.startswith("Artifact expires (") and message.endswith(
        f"after the task expiration {expires} (task.expires < expires) - this is not allowed, "
        "artifacts may not expire after the task they belong to expires")


def test_error_artifacts_answer_424_with_reason_and_message(dev_taskcluster, running):
    task_id, queue = running
    queue.createArtifact(task_id, "0", "public/missing.log", {
        "storageType": "error", "expires": soon(days=1), "reason": "file-missing-on-worker",
        "message": "no such file"})
    reader = taskcluster.Queue(dev_taskcluster.options())
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        reader.getArtifact(task_id, "0", "public/missing.log")
    assert refused.value.status_code == 424
    assert refused.value.body == {"reason": "file-missing-on-worker", "message": "no such file"}
    assert reader.latestArtifact(task_id, "public/missing.log")["storageType"] == "error"


def test_finish_artifact_needs_its_upload_id_and_finished_data(dev_taskcluster, running):
    task_id, queue = running
    created = queue.createArtifact(task_id, "0", "public/a.json", {
        "storageType": "object", "contentType": "application/json", "expires": soon(days=1)})
    for upload_id, message in (
            (slugid.nice(), "given uploadId does not match that for the artifact"),
            (created["uploadId"], "Object storing artifact data does not exist")):
        with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
            queue.finishArtifact(task_id, "0", "public/a.json", {"uploadId": upload_id})
        assert status_of(refused) == (400, message)
    reader = taskcluster.Queue(dev_taskcluster.options())
    listed = reader.listLatestArtifacts(task_id)["artifacts"]
    assert [(a["name"], a["storageType"]) for a in listed] == [("public/a.json", "object")]
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        reader.latestArtifactInfo(task_id, "public/a.json")
    assert refused.value.status_code == 404


def test_references_may_become_links_which_are_followed_and_other_changes_conflict(
        dev_taskcluster, running):
    task_id, queue = running
    expires = soon(days=1)
    queue.createArtifact(task_id, "0", "public/logs/live.log", {
        "storageType": "reference", "contentType": "text/plain", "expires": expires,
        "url": "https://example.com/live"})
    queue.createArtifact(task_id, "0", "public/logs/live_backing.log", {
        "storageType": "s3", "contentType": "text/plain", "expires": expires})
    queue.createArtifact(task_id, "0", "public/logs/live.log", {
        "storageType": "link", "expires": expires, "artifact": "public/logs/live_backing.log"})
    reader = taskcluster.Queue(dev_taskcluster.options())
    followed = reader.getArtifact(task_id, "0", "public/logs/live.log")
    assert followed["url"].endswith("/0/public%2Flogs%2Flive_backing.log")
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        queue.createArtifact(task_id, "0", "public/logs/live_backing.log", {
            "storageType": "s3", "contentType": "application/json", "expires": expires})
    assert refused.value.status_code == 409
    pages: list[dict] = []
    reader.listArtifacts(task_id, "0", query={"limit": 1}, paginationHandler=pages.append)
    assert [[a["name"] for a in p["artifacts"]] for p in pages] == [
        ["public/logs/live.log"], ["public/logs/live_backing.log"]]


def test_artifacts_after_resolution_only_within_25_minutes_of_an_exception(dev_taskcluster):
    done, broken = create(dev_taskcluster), create(dev_taskcluster)
    claims = {c["status"]["taskId"]: task_queue(dev_taskcluster, c)
              for c in claim_work(worker_queue(dev_taskcluster), tasks=2)}
    claims[done].reportCompleted(done, "0")
    claims[broken].reportException(broken, "0", {"reason": "malformed-payload"})
    request = {"storageType": "reference", "contentType": "text/plain", "expires": soon(days=1),
               "url": "https://example.com/log"}
    assert claims[broken].createArtifact(broken, "0", "public/log", request)
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        claims[done].createArtifact(done, "0", "public/log", request)
    assert refused.value.status_code == 409


def test_object_service_locks_in_an_upload_and_keeps_its_hashes(dev_taskcluster):
    objects = taskcluster.Object(dev_taskcluster.options())
    name, upload_id, expires = "project/cib/thing", slugid.nice(), soon(days=1)
    request = {"projectId": "cib", "uploadId": upload_id, "expires": expires,
               "proposedUploadMethods": {}}
    assert objects.createUpload(name, request)["uploadMethod"] == {}
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        objects.createUpload(name, {**request, "uploadId": slugid.nice()})
    assert status_of(refused) == (409, "Object already exists")
    data = b"hello"
    inline = objects.createUpload(name, {**request, "proposedUploadMethods": {
        "dataInline": {"contentType": "text/plain", "objectData": "aGVsbG8="},
        "putUrl": {"contentType": "text/plain", "contentLength": 5}}})
    assert inline["uploadMethod"] == {"dataInline": True}
    hashes = {"sha256": hashlib.sha256(data).hexdigest()}
    objects.finishUpload(name, {"projectId": "cib", "uploadId": upload_id, "hashes": hashes})
    objects.finishUpload(name, {"projectId": "cib", "uploadId": upload_id, "hashes": hashes})
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        objects.finishUpload(name, {"projectId": "cib", "uploadId": upload_id,
                                    "hashes": {"sha256": "0" * 64}})
    assert refused.value.status_code == 409
    got = objects.startDownload(name, {"acceptDownloadMethods": {"simple": True,
                                                                "getUrl": True}})
    assert (got["method"], got["hashes"]) == ("getUrl", hashes)
    assert requests.get(got["url"]).content == data
    with pytest.raises(taskcluster.TaskclusterRestFailure) as refused:
        objects.startDownload(name, {"acceptDownloadMethods": {}})
    assert refused.value.status_code == 406

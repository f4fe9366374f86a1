"""The queue's artifact methods (`services/queue/src/artifacts.js`): creating artifacts of the
five storage types (object artifacts through the object service, s3 artifacts put at a URL
the local Taskcluster serves as their bucket), finishing object artifacts, listing them,
their metadata, and getting their content (303 to the data, links followed, 424 for error
artifacts), with the queue's checks and re-creation rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import slugid

from . import credentials, dates, objects
from .api import Call, Context, Handler, Reply
from .apierror import ApiError, pretty
from .pagination import paginate, with_token
from .state import Artifact, TaskRecord

PUBLIC_BUCKET, PRIVATE_BUCKET = "dev-taskcluster-public-artifacts", "dev-taskcluster-artifacts"
PUT_URL_SECONDS = 45 * 60
EXCEPTION_UPLOAD_GRACE = timedelta(minutes=25)
EXPIRES_DRIFT = timedelta(minutes=15)
DEFAULT_CONTENT_TYPE = "application/binary"


def object_name(task_id: str, run_id: int, name: str) -> str:
    """The object service's name for an object artifact (`artifactToObjectName`)."""
    return f"t/{task_id}/{run_id}/{name}"


def storage_url(root_url: str, task_id: str, run_id: int, name: str) -> str:
    """Where the local Taskcluster serves (GET) and accepts (PUT) an s3 artifact's data."""
    return f"{root_url}/dev/artifacts/{task_id}/{run_id}/{quote(name, safe='')}"


def s3_details(task_id: str, run_id: int, name: str) -> dict[str, str]:
    """An s3 artifact's details: its bucket (public for `public/...`) and key."""
    bucket = PUBLIC_BUCKET if name.startswith("public/") else PRIVATE_BUCKET
    return {"bucket": bucket, "prefix": f"{task_id}/{run_id}/{name}"}


def store_s3(ctx: Context, record: TaskRecord, run_id: int, name: str, content: bytes,
             content_type: str) -> Artifact:
    """An s3 artifact with its data already put, expiring with the task (the dev hooks')."""
    artifact = Artifact(name, "s3", content_type,
                        dates.parse(record.definition["expires"]),
                        s3_details(record.task_id, run_id, name), True, len(content), content)
    ctx.state.artifacts[(record.task_id, run_id, name)] = artifact
    return artifact


def compatible(original: Artifact, storage_type: str, content_type: str, expires: datetime,
               details: dict[str, Any]) -> bool:
    """`createArtifactCallsCompatible`: may createArtifact be repeated with these values?
    Same content type (links have none), expires not earlier, and the same storage type and
    details, except that a reference's details may change and a link may replace a
    reference."""
    if storage_type != "link" and original.content_type != content_type:
        return False
    if original.expires > expires:
        return False
    if original.storage_type == storage_type:
        return original.details == details or storage_type == "reference"
    return original.storage_type == "reference" and storage_type == "link"


def _check_run_accepts_artifacts(record: TaskRecord, run: dict[str, Any],
                                 now: datetime) -> None:
    """A run takes artifacts while running, or for 25 minutes after an exception."""
    if run["state"] == "running" or (
            run["state"] == "exception"
            and dates.parse(run["resolved"]) > now - EXCEPTION_UPLOAD_GRACE):
        return
    raise ApiError("RequestConflict",
                   "Artifacts cannot be created for a task after it is resolved, unless it is "
                   "resolved 'exception', and even in this case only up to 25 min past "
                   "resolution.This to ensure that artifacts have been uploaded before a task "
                   "is 'completed' and output is consumed by a dependent task\n\nTask status: "
                   + pretty(record.status()), {"status": record.status()})


def _claimed_run(ctx: Context, task_id: str, run_id: int) -> tuple[TaskRecord, dict[str, Any]]:
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise ApiError("InputError", "Task not found")
    if run_id >= len(record.runs):
        raise ApiError("InputError", "Run not found")
    run = record.runs[run_id]
    if not run.get("workerGroup") or not run.get("workerId"):
        raise ApiError("InputError",
                       "Run was not claimed by a worker and so no artifacts can exist")
    return record, run


def _details(ctx: Context, record: TaskRecord, run_id: int, name: str,
             body: dict[str, Any], expires: datetime) -> dict[str, Any]:
    """The details of a new artifact; an object artifact's upload is locked in with the
    object service first (a failure there is the queue's 500)."""
    storage_type, task_id = body["storageType"], record.task_id
    if storage_type == "object":
        upload_id = slugid.nice()
        try:
            objects.create_upload(ctx, object_name(task_id, run_id, name),
                                  record.definition["projectId"], upload_id, expires, {})
        except ApiError as exc:
            raise ApiError("InternalServerError", "Internal Server Error: the object "
                           f"service answered {exc.code}: {exc.message}") from None
        return {"uploadId": upload_id}
    if storage_type == "s3":
        return s3_details(task_id, run_id, name)
    if storage_type == "reference":
        return {"url": body["url"]}
    if storage_type == "link":
        return {"artifact": body["artifact"]}
    return {"message": body["message"], "reason": body["reason"]}


def _store(ctx: Context, key: tuple[str, int, str], body: dict[str, Any], expires: datetime,
           details: dict[str, Any]) -> Artifact:
    """`create_queue_artifact_2`, or on a repeat the allowed update (409 otherwise)."""
    storage_type = body["storageType"]
    content_type = body.get("contentType") or DEFAULT_CONTENT_TYPE
    original = ctx.state.artifacts.get(key)
    if original is None:
        artifact = Artifact(key[2], storage_type, content_type, expires, details,
                            storage_type != "object", body.get("contentLength"))
        ctx.state.artifacts[key] = artifact
        return artifact
    if not compatible(original, storage_type, content_type, expires, details):
        raise ApiError("RequestConflict",
                       "Artifact already exists with different properties, and none of the "
                       "allowed exceptions apply: " + pretty({
                           "storageType": original.storage_type,
                           "contentType": original.content_type,
                           "expires": dates.to_json(original.expires)}))
    original.details, original.storage_type, original.expires = details, storage_type, expires
    return original


def create_artifact(call: Call) -> dict[str, Any]:
    """`queue.createArtifact`."""
    ctx, task_id, run_id, name = (call.ctx, call.params["taskId"], int(call.params["runId"]),
                                  call.params["name"])
    body, now = call.body, ctx.clock()
    expires = dates.parse(body["expires"])
    if expires < now - EXPIRES_DRIFT:
        raise ApiError("InputError", "Expires must be in the future")
    record, run = _claimed_run(ctx, task_id, run_id)
    task_expires = dates.parse(record.definition["expires"])
    if expires > task_expires:
        raise ApiError("InputError",
                       f"Artifact expires ({dates.to_json(expires)}) after the task expiration "
                       f"{dates.to_json(task_expires)} (task.expires < expires) - this is not "
                       "allowed, artifacts may not expire after the task they belong to expires",
                       {"taskExpires": dates.to_json(task_expires),
                        "expires": dates.to_json(expires)})
    _check_run_accepts_artifacts(record, run, now)
    details = _details(ctx, record, run_id, name, body, expires)
    artifact = _store(ctx, (task_id, run_id, name), body, expires, details)
    return _created(ctx, record, run, artifact)


def _created(ctx: Context, record: TaskRecord, run: dict[str, Any],
             artifact: Artifact) -> dict[str, Any]:
    """createArtifact's reply: upload credentials for an object, a PUT URL for s3."""
    task_id, run_id, now = record.task_id, run["runId"], ctx.clock()
    if artifact.storage_type == "object":
        project_id = record.definition["projectId"]
        name = object_name(task_id, run_id, artifact.name)
        creds = credentials.issue(
            ctx, f"artifact-upload/{task_id}/{run_id}/on/{run['workerGroup']}/{run['workerId']}",
            [f"object:upload:{project_id}:{name}"],
            min(artifact.expires, now + timedelta(hours=24)))
        return {"storageType": "object", "name": name, "projectId": project_id,
                "uploadId": artifact.details["uploadId"],
                "expires": dates.to_json(artifact.expires), "credentials": creds}
    if artifact.storage_type == "s3":
        return {"storageType": "s3", "contentType": artifact.content_type,
                "expires": dates.to_json(now + timedelta(seconds=PUT_URL_SECONDS)),
                "putUrl": storage_url(ctx.root_url, task_id, run_id, artifact.name)}
    return {"storageType": artifact.storage_type}


def finish_artifact(call: Call) -> Reply:
    """`queue.finishArtifact`: an object artifact becomes present once its object's upload is
    finished (idempotent; 400 for other storage types or another uploadId)."""
    ctx, task_id, run_id, name = (call.ctx, call.params["taskId"], int(call.params["runId"]),
                                  call.params["name"])
    artifact = ctx.state.artifacts.get((task_id, run_id, name))
    record = ctx.state.tasks.get(task_id)
    if artifact is None or record is None or run_id >= len(record.runs):
        raise ApiError("ResourceNotFound", f"Artifact with taskId `{task_id}`, runId {run_id}, "
                       f"name `{name}` not found", {"taskId": task_id, "runId": run_id,
                                                    "name": name})
    if artifact.storage_type != "object":
        raise ApiError("InputError", "Only object artifacts can be finished")
    if not artifact.present:
        if call.body["uploadId"] != artifact.details.get("uploadId"):
            raise ApiError("InputError", "given uploadId does not match that for the artifact")
        if objects.finished(ctx, object_name(task_id, run_id, name)) is None:
            raise ApiError("InputError", "Object storing artifact data does not exist")
        artifact.present, artifact.details = True, {}
    return Reply(b"", 204, content_type="text/plain")


def latest_run_id(ctx: Context, task_id: str) -> int:
    """The latest run's id (`getLatestRunId`): 404 without the task or without runs."""
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise ApiError("ResourceNotFound", "Task not found")
    if not record.runs:
        raise ApiError("ResourceNotFound", "Task doesn't have any runs")
    return len(record.runs) - 1


def _follow(call: Call, task_id: str, run_id: int, name: str) -> Artifact:
    """`getArtifactFollowingLinks`: the artifact, links followed, each name authorized."""
    names: list[str] = []
    while True:
        names.append(name)
        call.authorize(names=list(names))
        artifact = call.ctx.state.artifacts.get((task_id, run_id, name))
        if artifact is None or not artifact.present:
            raise ApiError("ResourceNotFound", "Artifact not found")
        if artifact.expires < call.ctx.clock():
            raise ApiError("ResourceExpired", "Artifact expired")
        if artifact.storage_type != "link":
            return artifact
        name = artifact.details["artifact"]
        if name in names:
            raise ApiError("InputError", "Artifact leads to a link cycle")


def _url(ctx: Context, task_id: str, run_id: int, artifact: Artifact) -> str:
    """The URL an s3, reference or object artifact's data is at (404 for an object the
    object service does not have finished)."""
    if artifact.storage_type == "reference":
        return str(artifact.details["url"])
    if artifact.storage_type == "s3":
        return storage_url(ctx.root_url, task_id, run_id, artifact.name)
    stored = objects.finished(ctx, object_name(task_id, run_id, artifact.name))
    if stored is None:
        raise ApiError("ResourceNotFound", "Object does not exist.")
    return str(objects.download_method(ctx, stored, "simple")["url"])


def _download(call: Call, task_id: str, run_id: int, name: str) -> Reply:
    """`replyWithArtifactDownload`: 303 to the data, or 424 with an error artifact's reason
    and message."""
    artifact = _follow(call, task_id, run_id, name)
    headers = {"x-taskcluster-artifact-storage-type": artifact.storage_type}
    if artifact.storage_type == "error":
        return Reply({"reason": artifact.details["reason"],
                      "message": artifact.details["message"]}, 424, headers, checked=False)
    url = _url(call.ctx, task_id, run_id, artifact)
    return Reply({"storageType": artifact.storage_type, "url": url}, 303,
                 {**headers, "location": url})


def get_artifact(call: Call) -> Reply:
    """`queue.getArtifact`."""
    return _download(call, call.params["taskId"], int(call.params["runId"]),
                     call.params["name"])


def get_latest_artifact(call: Call) -> Reply:
    """`queue.getLatestArtifact`: the scope is checked before the task is looked up."""
    name, task_id = call.params["name"], call.params["taskId"]
    call.authorize(names=[name])
    return _download(call, task_id, latest_run_id(call.ctx, task_id), name)


def _content(call: Call, task_id: str, run_id: int, name: str) -> dict[str, Any]:
    """`replyWithArtifactContent`: how to get the data, without redirecting."""
    ctx = call.ctx
    artifact = _follow(call, task_id, run_id, name)
    kind = artifact.storage_type
    if kind == "error":
        return {"storageType": kind, "reason": artifact.details["reason"],
                "message": artifact.details["message"]}
    if kind == "object":
        obj = object_name(task_id, run_id, artifact.name)
        creds = credentials.issue(ctx, f"artifact-download/{task_id}/{run_id}/{artifact.name}",
                                  [f"object:download:{obj}"], ctx.clock() + timedelta(hours=1))
        return {"storageType": kind, "name": obj, "credentials": creds}
    return {"storageType": kind, "url": _url(ctx, task_id, run_id, artifact)}


def artifact_content(call: Call) -> dict[str, Any]:
    """`queue.artifact`."""
    return _content(call, call.params["taskId"], int(call.params["runId"]),
                    call.params["name"])


def latest_artifact_content(call: Call) -> dict[str, Any]:
    """`queue.latestArtifact`."""
    task_id = call.params["taskId"]
    return _content(call, task_id, latest_run_id(call.ctx, task_id), call.params["name"])


def _list(call: Call, task_id: str, run_id: int) -> dict[str, Any]:
    """One page of a run's artifacts by name, unfinished object artifacts included."""
    found = sorted((a for (t, r, _), a in call.ctx.state.artifacts.items()
                    if t == task_id and r == run_id), key=lambda a: a.name)
    page, token = paginate(found, call.query)
    return with_token({"artifacts": [a.serialize() for a in page]}, token)


def list_artifacts(call: Call) -> dict[str, Any]:
    """`queue.listArtifacts`."""
    task_id, run_id = call.params["taskId"], int(call.params["runId"])
    if run_id > latest_run_id(call.ctx, task_id):
        raise ApiError("ResourceNotFound",
                       f"Task with taskId: `{task_id}` has no run with runId: {run_id}",
                       {"taskId": task_id, "runId": run_id})
    return _list(call, task_id, run_id)


def list_latest_artifacts(call: Call) -> dict[str, Any]:
    """`queue.listLatestArtifacts`."""
    task_id = call.params["taskId"]
    return _list(call, task_id, latest_run_id(call.ctx, task_id))


def _info(ctx: Context, task_id: str, run_id: int, name: str) -> dict[str, Any]:
    artifact = ctx.state.artifacts.get((task_id, run_id, name))
    if artifact is None or not artifact.present:
        raise ApiError("ResourceNotFound", "Artifact not found")
    return artifact.serialize()


def artifact_info(call: Call) -> dict[str, Any]:
    """`queue.artifactInfo` (links are not followed)."""
    return _info(call.ctx, call.params["taskId"], int(call.params["runId"]),
                 call.params["name"])


def latest_artifact_info(call: Call) -> dict[str, Any]:
    """`queue.latestArtifactInfo`."""
    task_id = call.params["taskId"]
    return _info(call.ctx, task_id, latest_run_id(call.ctx, task_id), call.params["name"])


def get_data(ctx: Context, task_id: str, run_id: int, name: str) -> Reply:
    """GET of an s3 artifact's URL: its data (404 `NoSuchKey` until it is put)."""
    artifact = ctx.state.artifacts.get((task_id, run_id, name))
    if artifact is None or artifact.storage_type != "s3" or artifact.content is None:
        return Reply({"error": "no such artifact"}, 404)
    return objects.data_reply(artifact.content, artifact.content_type, artifact.content_encoding)


def put_data(ctx: Context, task_id: str, run_id: int, name: str, content_type: str | None,
             data: bytes, content_encoding: str | None = None) -> Reply:
    """PUT to an s3 artifact's `putUrl`: stores the data and its Content-Encoding; the
    Content-Type must be the one createArtifact was given (it is signed; 403 otherwise)."""
    artifact = ctx.state.artifacts.get((task_id, run_id, name))
    if artifact is None or artifact.storage_type != "s3":
        return Reply({"error": "AccessDenied: no s3 artifact at this URL"}, 403)
    if content_type != artifact.content_type:
        return Reply({"error": "SignatureDoesNotMatch: the URL was signed for Content-Type "
                               f"{artifact.content_type!r}, not {content_type!r}"}, 403)
    artifact.content, artifact.content_encoding = data, content_encoding
    return Reply(b"", content_type="text/plain")


HANDLERS: dict[str, Handler] = {
    "queue.createArtifact": create_artifact,
    "queue.finishArtifact": finish_artifact,
    "queue.getArtifact": get_artifact,
    "queue.getLatestArtifact": get_latest_artifact,
    "queue.artifact": artifact_content,
    "queue.latestArtifact": latest_artifact_content,
    "queue.listArtifacts": list_artifacts,
    "queue.listLatestArtifacts": list_latest_artifacts,
    "queue.artifactInfo": artifact_info,
    "queue.latestArtifactInfo": latest_artifact_info,
}

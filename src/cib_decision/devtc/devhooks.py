"""Development hooks, not Taskcluster APIs: act as a worker (resolve a task, store its
artifacts), read the counters, reset, set faults, and serve the data of s3 artifacts and objects
(the local Taskcluster is their bucket). Served under `/dev/...` without authentication or
faults; `DevTaskcluster` calls the same functions."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import artifacts as queue_artifacts
from . import claims, credentials, dates, objects, runs
from .api import Context, Reply
from .faults import Faults, FaultSettings, Stats
from .runs import RESOLUTIONS
from .state import TaskRecord

# exception reasons after which the queue retries the task (a new run) while retries are left:
# reportException's, and an expired claim's
_RETRIED = {**claims.RETRY_REASONS, "claim-expired": "retry"}
_EXCEPTION_REASONS = ("deadline-exceeded", "canceled", "claim-expired", "worker-shutdown",
                      "malformed-payload", "resource-unavailable", "internal-error",
                      "intermittent-task", "superseded")
WORKER_GROUP, WORKER_ID = "dev-taskcluster", "dev-worker"


class HookError(Exception):
    """A dev hook that cannot be done; `status` is the HTTP status /dev routes answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def encode_artifact(content: object) -> tuple[bytes, str]:
    """Bytes as they are, text as text/plain, anything else as JSON: data and content type."""
    if isinstance(content, bytes):
        return content, "application/octet-stream"
    if isinstance(content, str):
        return content.encode(), "text/plain; charset=utf-8"
    return json.dumps(content).encode(), "application/json"


def resolve_task(ctx: Context, task_id: str, state: str = "completed",
                 artifacts: dict[str, object] | None = None,
                 reason: str | None = None) -> dict[str, Any]:
    """Do what a worker and the queue would: claim the task's run (scheduling it first if
    it waits for dependencies), store `artifacts` on that run (as s3 artifacts), resolve it
    as `state`, then schedule dependents it unblocks, index a completed task at its
    `index.*` routes, or retry an `exception` whose reason the queue retries. Returns the
    task status."""
    if state not in RESOLUTIONS:
        raise HookError(f"state must be one of {', '.join(RESOLUTIONS)}, not {state!r}")
    if state == "exception":
        reason = reason or "malformed-payload"
        if reason not in _EXCEPTION_REASONS:
            raise HookError(f"reason must be one of {', '.join(_EXCEPTION_REASONS)}")
    elif reason not in (None, state):
        raise HookError(f"a {state} run's reason is {state!r}")
    for name in artifacts or {}:
        if not re.fullmatch(r"[\x20-\x7e]+", name):
            raise HookError(f"artifact names are printable ASCII: {name!r}")
    with ctx.state.lock:
        record, run = _claim(ctx, task_id)
        for name, content in (artifacts or {}).items():
            queue_artifacts.store_s3(ctx, record, run["runId"], name, *encode_artifact(content))
        runs.resolve(ctx, record, run["runId"], state, reason or state, _RETRIED.get(reason or ""))
        return record.status()


def _claim(ctx: Context, task_id: str) -> tuple[TaskRecord, dict[str, Any]]:
    """The task's run, claimed by the dev worker: a pending run becomes running (an
    unscheduled task is scheduled first); a running run is claimed again (new takenUntil)."""
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise HookError(f"no task {task_id}", 404)
    if record.state() in RESOLUTIONS:
        raise HookError(f"task {task_id} is already {record.state()}", 409)
    runs.schedule(ctx, record)
    run_id = len(record.runs) - 1
    if runs.claim(ctx, record, run_id, WORKER_GROUP, WORKER_ID) is None:
        runs.reclaim(ctx, record, run_id, runs.taken_until(ctx))
    return record, record.runs[run_id]


def task_credentials(ctx: Context, task_id: str) -> dict[str, Any]:
    """Claim the task (see `_claim`) and issue what `claimWork` gives a worker (see
    `credentials.task_run`): `{"status", "runId", "takenUntil", "credentials"}`."""
    with ctx.state.lock:
        record, run = _claim(ctx, task_id)
        taken = run["takenUntil"]
        return {"status": record.status(), "runId": run["runId"], "takenUntil": taken,
                "credentials": credentials.task_run(
                    ctx, task_id, run["runId"], run["workerGroup"], run["workerId"],
                    dates.parse(taken), record.definition["scopes"])}


def set_faults(faults: Faults, body: dict[str, Any]) -> FaultSettings:
    """New fault settings from `{"errorRate", "latencyMs", "dropRate", "seed", "script"}`
    (missing rates: 0; `script`: exact faults for the next requests)."""
    try:
        settings = FaultSettings(error_rate=float(body.get("errorRate", 0)),
                                 latency_ms=int(body.get("latencyMs", 0)),
                                 drop_rate=float(body.get("dropRate", 0)))
        faults.set(settings, seed=body.get("seed"))
        faults.script(list(body.get("script", [])))
    except (TypeError, ValueError) as exc:
        raise HookError(str(exc)) from None
    return settings


@dataclass
class DevRoutes:
    """The `/dev/...` routes."""

    ctx: Context
    faults: Faults
    stats: Stats

    def handle(self, method: str, path: str, body: bytes,
               headers: dict[str, str] | None = None) -> Reply:
        """Answer one `/dev/...` request (JSON errors `{"error": message}`); `headers` in
        lower case."""
        stored = self._storage(method, path, body, headers or {})
        if stored is not None:
            return stored
        try:
            return self._dispatch(method, path, json.loads(body) if body else {})
        except HookError as exc:
            return Reply({"error": str(exc)}, exc.status)
        except ValueError as exc:
            return Reply({"error": f"body is not JSON: {exc}"}, 400)

    def schema(self, path: str) -> Reply:
        """`/schemas/<service>/v1/<name>.json` as a deployment serves its schemas (the web
        server's static files: what a task without a schema directory fetches)."""
        document = self.ctx.schemas.documents.get(path.rstrip("#"))
        if document is None:
            return Reply({"error": f"no schema {path}"}, 404)
        self.stats.schema_served(path)
        return Reply(document, headers={"Cache-Control": "max-age=3600"})

    def _storage(self, method: str, path: str, body: bytes,
                 headers: dict[str, str]) -> Reply | None:
        """The bucket: GET and PUT of s3 artifact and object data (None: not such a route)."""
        content_type, encoding = headers.get("content-type"), headers.get("content-encoding")
        found = re.fullmatch(r"/dev/artifacts/([^/]+)/(\d+)/(.+)", path)
        if found and method in ("GET", "PUT"):
            key = (unquote(found.group(1)), int(found.group(2)), unquote(found.group(3)))
            with self.ctx.state.lock:
                if method == "GET":
                    return queue_artifacts.get_data(self.ctx, *key)
                return queue_artifacts.put_data(self.ctx, *key, content_type, body, encoding)
        found = re.fullmatch(r"/dev/objects/(.+)", path)
        if found and method in ("GET", "PUT"):
            name = unquote(found.group(1))
            with self.ctx.state.lock:
                if method == "GET":
                    return objects.get_data(self.ctx, name)
                return objects.put_data(self.ctx, name, content_type, body, encoding)
        return None

    def _dispatch(self, method: str, path: str, body: Any) -> Reply:
        state = self.ctx.state
        if method == "GET" and path == "/dev/stats":
            return Reply(self.stats.snapshot())
        if method == "POST" and path == "/dev/reset":
            state.reset()
            self.stats.reset()
            return Reply({})
        if path == "/dev/faults" and method in ("GET", "PUT"):
            settings = set_faults(self.faults, body) if method == "PUT" else self.faults.settings
            return Reply(settings.to_json())
        if method == "GET" and path == "/dev/tasks":
            with state.lock:
                return Reply({t: copy.deepcopy(r.definition) for t, r in state.tasks.items()})
        if method == "GET" and path == "/dev/worker-pools":
            with state.lock:
                return Reply({i: p.serialize() for i, p in state.pools.items()})
        found = re.fullmatch(r"/dev/tasks/([^/]+)/resolve", path)
        if method == "POST" and found:
            return Reply(resolve_task(self.ctx, unquote(found.group(1)),
                                      body.get("state", "completed"), body.get("artifacts"),
                                      body.get("reason")))
        found = re.fullmatch(r"/dev/task-credentials/([^/]+)", path)
        if method == "POST" and found:
            return Reply(task_credentials(self.ctx, unquote(found.group(1))))
        raise HookError(f"no dev route {method} {path}", 404)

"""Development hooks, not Taskcluster APIs: act as a worker (resolve a task, store its
artifacts), read the counters, reset, set faults, and serve stored artifact content. Served
under `/dev/...` without authentication or faults; `DevTaskcluster` calls the same functions."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import taskcluster

from . import dates, index, queue
from .api import Context, Reply
from .faults import Faults, FaultSettings, Stats
from .state import Artifact, TaskRecord

RESOLUTIONS = ("completed", "failed", "exception")
# exception reasons after which the queue retries the task (a new run) while retries are left
_RETRIED = {"worker-shutdown": "retry", "claim-expired": "retry",
            "intermittent-task": "task-retry"}
_EXCEPTION_REASONS = ("deadline-exceeded", "canceled", "claim-expired", "worker-shutdown",
                      "malformed-payload", "resource-unavailable", "internal-error",
                      "intermittent-task", "superseded")
WORKER_GROUP, WORKER_ID = "dev-taskcluster", "dev-worker"
CLAIM_TIMEOUT = timedelta(minutes=20)


class HookError(Exception):
    """A dev hook that cannot be done; `status` is the HTTP status /dev routes answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def encode_artifact(content: object) -> Artifact:
    """Bytes as they are, text as text/plain, anything else as JSON."""
    if isinstance(content, bytes):
        return Artifact(content, "application/octet-stream")
    if isinstance(content, str):
        return Artifact(content.encode(), "text/plain; charset=utf-8")
    return Artifact(json.dumps(content).encode(), "application/json")


def resolve_task(ctx: Context, task_id: str, state: str = "completed",
                 artifacts: dict[str, object] | None = None,
                 reason: str | None = None) -> dict[str, Any]:
    """Do what a worker and the queue would: claim the task's run (scheduling it first if
    it waits for dependencies), store `artifacts` on that run, resolve it as `state`, then
    schedule dependents it unblocks, index a completed task at its `index.*` routes, or
    retry an `exception` whose reason the queue retries. Returns the task status."""
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
        now = ctx.clock()
        run_id = run["runId"]
        for name, content in (artifacts or {}).items():
            ctx.state.artifacts[(task_id, run_id, name)] = encode_artifact(content)
        run.update(state=state, reasonResolved=reason or state, resolved=dates.to_json(now))
        if state == "exception" and reason in _RETRIED and record.retries_left > 0:
            record.retries_left -= 1
            record.runs.append({"runId": run_id + 1, "state": "pending",
                                "reasonCreated": _RETRIED[reason],
                                "scheduled": dates.to_json(now)})
        else:
            queue.resolved(ctx, task_id)
            if state == "completed":
                index.index_completed_task(ctx, task_id)
        return record.status()


def _claim(ctx: Context, task_id: str) -> tuple[TaskRecord, dict[str, Any]]:
    """The task's run, claimed by the dev worker: a pending run becomes running (an
    unscheduled task is scheduled first); a running run is claimed again (new takenUntil)."""
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise HookError(f"no task {task_id}", 404)
    if record.state() in RESOLUTIONS:
        raise HookError(f"task {task_id} is already {record.state()}", 409)
    queue.schedule(ctx, record)
    now = ctx.clock()
    run = record.runs[-1]
    if run["state"] == "pending":
        run.update(state="running", workerGroup=WORKER_GROUP, workerId=WORKER_ID,
                   started=dates.to_json(now))
    run["takenUntil"] = dates.to_json(now + CLAIM_TIMEOUT)
    return record, run


def task_credentials(ctx: Context, task_id: str) -> dict[str, Any]:
    """Claim the task (see `_claim`) and issue what `claimWork` gives a worker: temporary
    credentials named `task-client/<taskId>/<runId>/on/<group>/<worker>/until/<t>`, issued by
    the queue, valid until the claim expires, holding the task's scopes plus reclaim, resolve
    and create-artifact for its run (`services/queue/src/task-creds.js`)."""
    with ctx.state.lock:
        record, run = _claim(ctx, task_id)
        run_id, taken = run["runId"], run["takenUntil"]
        taken_until = dates.parse(taken)
        scopes = [f"queue:reclaim-task:{task_id}/{run_id}",
                  f"queue:resolve-task:{task_id}/{run_id}",
                  f"queue:create-artifact:{task_id}/{run_id}",
                  *record.definition["scopes"]]
        status = record.status()
    until = round(taken_until.timestamp() * 1000) / 1000  # JavaScript: getTime() / 1000
    name = "/".join(["task-client", task_id, str(run_id), "on", WORKER_GROUP, WORKER_ID,
                     "until", str(int(until)) if until.is_integer() else str(until)])
    issuer = ctx.queue_client
    credentials = taskcluster.createTemporaryCredentials(
        issuer.client_id, issuer.access_token, ctx.clock() - timedelta(minutes=1), taken_until,
        scopes, name=name)
    credentials = {k: v.decode() if isinstance(v, bytes) else v
                   for k, v in credentials.items()}
    return {"status": status, "runId": run_id, "takenUntil": taken,
            "credentials": credentials}


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

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        """Answer one `/dev/...` request (JSON errors `{"error": message}`)."""
        try:
            return self._dispatch(method, path, json.loads(body) if body else {})
        except HookError as exc:
            return Reply({"error": str(exc)}, exc.status)
        except ValueError as exc:
            return Reply({"error": f"body is not JSON: {exc}"}, 400)

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
        found = re.fullmatch(r"/dev/artifacts/([^/]+)/(\d+)/(.+)", path)
        if method == "GET" and found:
            key = (unquote(found.group(1)), int(found.group(2)), unquote(found.group(3)))
            with state.lock:
                artifact = state.artifacts.get(key)
            if artifact is None:
                raise HookError("no such artifact", 404)
            return Reply(artifact.content, content_type=artifact.content_type)
        raise HookError(f"no dev route {method} {path}", 404)

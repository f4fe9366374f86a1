"""The queue's worker interface (`services/queue/src/api.js`, `workclaimer.js`): claimWork
(long-polling for pending runs), reclaimTask, reportCompleted, reportFailed and
reportException, with the queue's 404 and 409 rules. The runs change through `runs.py`."""

from __future__ import annotations

import copy
import time
from typing import Any

from . import credentials, dates, runs
from .api import Call, Context, Handler
from .apierror import ApiError
from .state import TaskRecord

# reportException: the reasons the queue retries, and the reasonCreated of the new run
RETRY_REASONS = {"worker-shutdown": "retry", "intermittent-task": "task-retry"}
# how often a waiting claimWork checks whether its client went away
_POLL_SECONDS = 0.5


def _run(ctx: Context, task_id: str, run_id: int,
         missing: str) -> tuple[TaskRecord, dict[str, Any]]:
    """The task and its run `run_id`; 404 (`missing` for the task) when either is absent."""
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise ApiError("ResourceNotFound", missing.format(task_id=task_id), {"taskId": task_id})
    if run_id >= len(record.runs):
        raise ApiError("ResourceNotFound", f"Run {run_id} not found on task `{task_id}`.",
                       {"taskId": task_id, "runId": run_id})
    return record, record.runs[run_id]


def _conflict(task_id: str, run_id: int) -> ApiError:
    return ApiError("RequestConflict",
                    f"Run {run_id} on task `{task_id}` is resolved or not running.",
                    {"taskId": task_id, "runId": run_id})


def _claimed(ctx: Context, record: TaskRecord, run: dict[str, Any]) -> dict[str, Any]:
    """One item of claimWork's reply (`WorkClaimer.claimTask`)."""
    until = dates.parse(run["takenUntil"])
    return {"status": record.status(), "runId": run["runId"],
            "workerGroup": run["workerGroup"], "workerId": run["workerId"],
            "takenUntil": run["takenUntil"], "task": copy.deepcopy(record.definition),
            "credentials": credentials.task_run(
                ctx, record.task_id, run["runId"], run["workerGroup"], run["workerId"], until,
                record.definition["scopes"])}


def claim_pending(ctx: Context, task_queue_id: str, worker_group: str, worker_id: str,
                  count: int) -> list[dict[str, Any]]:
    """Claim up to `count` pending runs of a queue for a worker, now (no waiting)."""
    claims = []
    for record in runs.claimable(ctx, task_queue_id)[:count]:
        run = runs.claim(ctx, record, len(record.runs) - 1, worker_group, worker_id)
        if run is not None:
            claims.append(_claimed(ctx, record, run))
    return claims


def claim_work(call: Call) -> dict[str, Any]:
    """`queue.claimWork`: the pending runs there are, or, when there are none, the first to
    become pending within the long-poll timeout (waiting without holding the state lock);
    `{"tasks": []}` when none did or the client went away."""
    ctx, queue_id, body = call.ctx, call.params["taskQueueId"], call.body
    group, worker = body["workerGroup"], body["workerId"]
    call.authorize(workerGroup=group, workerId=worker, taskQueueId=queue_id)
    give_up = time.monotonic() + ctx.timeouts.claim_work
    while True:
        claims = claim_pending(ctx, queue_id, group, worker, body["tasks"])
        remaining = give_up - time.monotonic()
        if claims or remaining <= 0 or call.request.closed():
            return {"tasks": claims}
        ctx.state.changed.wait(min(remaining, _POLL_SECONDS))


def reclaim_task(call: Call) -> dict[str, Any]:
    """`queue.reclaimTask`: a new takenUntil and new credentials for the running latest run;
    409 past the task's deadline or when the run is no longer running."""
    ctx, task_id, run_id = call.ctx, call.params["taskId"], int(call.params["runId"])
    record, run = _run(ctx, task_id, run_id,
                       "Task `{task_id}` not found. Are you sure it was created?")
    deadline = record.definition["deadline"]
    if dates.parse(deadline) <= ctx.clock():
        raise ApiError("RequestConflict",
                       f"Task `{task_id}` can't be reclaimed past its deadline of {deadline}.",
                       {"taskId": task_id, "deadline": deadline})
    until = runs.taken_until(ctx)
    if not runs.reclaim(ctx, record, run_id, until):
        raise _conflict(task_id, run_id)
    return {"status": record.status(), "runId": run_id, "workerGroup": run["workerGroup"],
            "workerId": run["workerId"], "takenUntil": dates.to_json(until),
            "credentials": credentials.task_run(ctx, task_id, run_id, run["workerGroup"],
                                                run["workerId"], until,
                                                record.definition["scopes"])}


def _resolve_as(call: Call, target: str) -> dict[str, Any]:
    """reportCompleted/reportFailed (`resolveTask`): idempotent when the run already is
    `target`; 409 when it was resolved otherwise or is not the latest run."""
    ctx, task_id, run_id = call.ctx, call.params["taskId"], int(call.params["runId"])
    record, run = _run(ctx, task_id, run_id,
                       "Task `{task_id}` not found. Are you sure it was created?")
    if run["state"] not in ("running", target):
        raise ApiError("RequestConflict",
                       f"Run {run_id} of task `{task_id}` is not running or {target}.",
                       {"taskId": task_id, "runId": run_id, "targetState": target})
    runs.resolve(ctx, record, run_id, target, target)
    if (len(record.runs) - 1 != run_id or run["state"] != target
            or run.get("reasonResolved") != target):
        raise _conflict(task_id, run_id)
    return {"status": record.status()}


def report_completed(call: Call) -> dict[str, Any]:
    """`queue.reportCompleted` (a body `{"success": false}` of very old workers: failed)."""
    failed = isinstance(call.body, dict) and call.body.get("success") is False
    return _resolve_as(call, "failed" if failed else "completed")


def report_failed(call: Call) -> dict[str, Any]:
    """`queue.reportFailed`."""
    return _resolve_as(call, "failed")


def report_exception(call: Call) -> dict[str, Any]:
    """`queue.reportException`: `worker-shutdown` and `intermittent-task` get a new run
    (`retry`, `task-retry`) while retries are left; idempotent for the same reason."""
    ctx, task_id, run_id = call.ctx, call.params["taskId"], int(call.params["runId"])
    reason = call.body["reason"]
    record, run = _run(ctx, task_id, run_id,
                       "Task `{task_id}` not found. Are you sure it exists?")
    runs.resolve(ctx, record, run_id, "exception", reason, RETRY_REASONS.get(reason))
    if (len(record.runs) - 1 > run_id + 1 or run["state"] != "exception"
            or run.get("reasonResolved") != reason):
        raise _conflict(task_id, run_id)
    return {"status": record.status()}


HANDLERS: dict[str, Handler] = {
    "queue.claimWork": claim_work,
    "queue.reclaimTask": reclaim_task,
    "queue.reportCompleted": report_completed,
    "queue.reportFailed": report_failed,
    "queue.reportException": report_exception,
}

"""The life of a task's runs, as the queue's database functions change them (`schedule_task`,
`claim_task`, `reclaim_task`, `resolve_task`, `check_task_claim`, `cancel_task` in
`db/versions/0028.yml` and `0124.yml`), and what follows a task's final resolution: the
dependency tracker schedules the dependents it unblocks (`dependencytracker.js`) and the index
indexes a completed task. The queue's API, the dev hooks and the expiry checks (the queue's
claim and deadline resolvers) all change runs through these functions, holding the state lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from . import dates, index, notify
from .api import Context
from .state import TaskRecord

RESOLUTIONS = ("completed", "failed", "exception")
# `queue_pending_tasks_add_for_task`: the pending queue's order, highest first
PRIORITY_VALUES = {"highest": 7, "very-high": 6, "high": 5, "medium": 4, "low": 3,
                   "very-low": 2, "lowest": 1}


def satisfies(dependency: TaskRecord, requires: str) -> bool:
    """True when a dependency's state no longer blocks a dependent with `requires`."""
    state = dependency.state()
    return state == "completed" or (requires == "all-resolved" and state in ("failed",
                                                                             "exception"))


def add_pending_run(ctx: Context, record: TaskRecord, reason: str) -> dict[str, Any]:
    """Append a pending run created for `reason` and put it in the pending queue."""
    run = {"runId": len(record.runs), "state": "pending", "reasonCreated": reason,
           "scheduled": dates.to_json(ctx.clock())}
    record.runs.append(run)
    record.queued = next(ctx.state.sequence)
    ctx.state.changed.notify_all()
    return run


def schedule(ctx: Context, record: TaskRecord) -> None:
    """`schedule_task`: give an unscheduled task its first, pending run."""
    if not record.runs:
        add_pending_run(ctx, record, "scheduled")


def resolved(ctx: Context, task_id: str) -> None:
    """The dependency tracker's `resolveTask`: schedule the dependents the task was the last
    blocker of (a failed or exception task unblocks only `all-resolved` dependents)."""
    record = ctx.state.tasks[task_id]
    for dependent_id in ctx.state.dependents.get(task_id, []):
        dependent = ctx.state.tasks[dependent_id]
        if task_id in dependent.blocked_by and satisfies(record,
                                                         dependent.definition["requires"]):
            dependent.blocked_by.discard(task_id)
            if not dependent.blocked_by:
                schedule(ctx, dependent)


def _finished(ctx: Context, record: TaskRecord) -> None:
    """What a final resolution sets off: dependents, the index for a completed task, and the
    notify service's messages (notify.py)."""
    resolved(ctx, record.task_id)
    if record.state() == "completed":
        index.index_completed_task(ctx, record.task_id)
    notify.task_resolved(ctx, record)
    ctx.state.changed.notify_all()


def _latest(record: TaskRecord, run_id: int, state: str) -> dict[str, Any] | None:
    """Run `run_id` when it is the latest run and in `state`."""
    if len(record.runs) != run_id + 1 or record.runs[run_id]["state"] != state:
        return None
    return record.runs[run_id]


def taken_until(ctx: Context) -> datetime:
    """When a claim made now expires (now + claimTimeout)."""
    return ctx.clock() + timedelta(seconds=ctx.timeouts.claim)


def claimable(ctx: Context, task_queue_id: str) -> list[TaskRecord]:
    """The tasks of a queue whose latest run is pending and may be handed out (the pending
    queue skips tasks past their deadline), highest priority first, then oldest."""
    now = ctx.clock()
    found = [r for r in ctx.state.tasks.values()
             if r.definition["taskQueueId"] == task_queue_id and r.state() == "pending"
             and dates.parse(r.definition["deadline"]) > now]
    return sorted(found, key=lambda r: (-PRIORITY_VALUES.get(r.definition["priority"], 0),
                                        r.queued))


def claim(ctx: Context, record: TaskRecord, run_id: int, worker_group: str,
          worker_id: str) -> dict[str, Any] | None:
    """`claim_task`: the pending latest run becomes running on the worker until now +
    claimTimeout. The run, or None when it is not the latest pending one."""
    run = _latest(record, run_id, "pending")
    if run is None:
        return None
    now = ctx.clock()
    run.update(state="running", workerGroup=worker_group, workerId=worker_id,
               takenUntil=dates.to_json(taken_until(ctx)), started=dates.to_json(now))
    return run


def reclaim(ctx: Context, record: TaskRecord, run_id: int, until: datetime) -> bool:
    """`reclaim_task`: move the running latest run's takenUntil to `until`; False when the run
    is not the latest running one."""
    run = _latest(record, run_id, "running")
    if run is None:
        return False
    run["takenUntil"] = dates.to_json(until)
    return True


def resolve(ctx: Context, record: TaskRecord, run_id: int, state: str, reason: str,
            retry_reason: str | None = None) -> bool:
    """`resolve_task`: resolve the running latest run as `state` for `reason`; with a
    `retry_reason` and retries left, add a pending run instead of resolving the task for good.
    A final resolution schedules dependents and indexes a completed task. False (nothing
    changed) when the run is not the latest running one."""
    run = _latest(record, run_id, "running")
    if run is None:
        return False
    run.update(state=state, reasonResolved=reason, resolved=dates.to_json(ctx.clock()))
    _retry_or_finish(ctx, record, retry_reason)
    return True


def _retry_or_finish(ctx: Context, record: TaskRecord, retry_reason: str | None) -> None:
    if retry_reason is not None and record.retries_left > 0:
        record.retries_left -= 1
        add_pending_run(ctx, record, retry_reason)
    else:
        _finished(ctx, record)


def expire_claim(ctx: Context, record: TaskRecord) -> bool:
    """`check_task_claim` when the latest run's claim has expired: it is resolved
    `exception`/`claim-expired` and retried (reason `retry`) while retries are left; a task
    past its deadline is left to the deadline check. True when the run was resolved."""
    now = ctx.clock()
    run = record.runs[-1] if record.runs else None
    if (run is None or run["state"] != "running" or dates.parse(run["takenUntil"]) > now
            or dates.parse(record.definition["deadline"]) < now):
        return False
    run.update(state="exception", reasonResolved="claim-expired", resolved=dates.to_json(now))
    _retry_or_finish(ctx, record, "retry")
    return True


def exceed_deadline(ctx: Context, record: TaskRecord) -> bool:
    """The deadline resolver, `deadlineDelay` after an unresolved task's deadline:
    `cancel_task(deadline-exceeded)` resolves its pending or running run (an unscheduled task
    gets an `exception` run), and dependents follow. True when the task was resolved."""
    now = ctx.clock()
    delay = timedelta(seconds=ctx.timeouts.deadline_delay)
    if record.state() in RESOLUTIONS or dates.parse(record.definition["deadline"]) + delay > now:
        return False
    stamp = dates.to_json(now)
    if record.runs:
        record.runs[-1].update(state="exception", reasonResolved="deadline-exceeded",
                               resolved=stamp)
    else:
        record.runs.append({"runId": 0, "state": "exception", "reasonCreated": "exception",
                            "reasonResolved": "deadline-exceeded", "scheduled": stamp,
                            "resolved": stamp})
    _finished(ctx, record)
    return True


def expire(ctx: Context) -> dict[str, list[str]]:
    """One pass of the claim and deadline resolvers over every task:
    `{"claimExpired": [taskId...], "deadlineExceeded": [taskId...]}`."""
    records = list(ctx.state.tasks.values())
    return {"claimExpired": [r.task_id for r in records if expire_claim(ctx, r)],
            "deadlineExceeded": [r.task_id for r in records if exceed_deadline(ctx, r)]}


def can_still_run(ctx: Context, record: TaskRecord, seen: frozenset[str] = frozenset()) -> bool:
    """False for a task that is resolved or that no worker will ever run: pending or
    unscheduled past its deadline (the pending queue skips it), or waiting for a dependency
    that is resolved without satisfying it, or that itself can no longer run."""
    state = record.state()
    if state in RESOLUTIONS:
        return False
    if state == "running":
        return True
    if dates.parse(record.definition["deadline"]) <= ctx.clock():
        return False
    if state == "pending":
        return True
    tasks, seen = ctx.state.tasks, seen | {record.task_id}
    return all(b in seen or (b in tasks and can_still_run(ctx, tasks[b], seen))
               for b in record.blocked_by)

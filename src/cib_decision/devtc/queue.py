"""The queue service: creating tasks (with every check the real queue makes in code), task
definitions and statuses, and task groups (`services/queue/src/api.js`). The worker interface
is in `claims.py`, artifacts in `artifacts.py`, the life of runs in `runs.py`."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from . import dates
from .api import Call, Context, Handler
from .apierror import ApiError
from .pagination import paginate, with_token
from .runs import satisfies, schedule
from .state import TaskGroup, TaskRecord

PRIORITIES = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest")
# the fields `Task.equals` compares when a taskId is created again
_IDENTITY = ("taskQueueId", "schedulerId", "projectId", "taskGroupId", "dependencies",
             "requires", "routes", "priority", "retries", "created", "deadline", "expires",
             "scopes", "payload", "metadata", "tags", "extra")


def _task(ctx: Context, task_id: str, message: str) -> TaskRecord:
    record = ctx.state.tasks.get(task_id)
    if record is None:
        raise ApiError("ResourceNotFound", message, {"taskId": task_id})
    return record


def task(call: Call) -> dict[str, Any]:
    """`queue.task`: the definition as stored."""
    task_id = call.params["taskId"]
    record = _task(call.ctx, task_id, f"`{task_id}` does not correspond to a task that exists.\n"
                                      "Are you sure this task has already been submitted?")
    return copy.deepcopy(record.definition)


def status(call: Call) -> dict[str, Any]:
    """`queue.status`."""
    task_id = call.params["taskId"]
    record = _task(call.ctx, task_id, f"`{task_id}` does not correspond to a task that exists.\n"
                                      "Are you sure this task exists?")
    return {"status": record.status()}


def _known(call: Call) -> list[TaskRecord]:
    task_ids = call.body["taskIds"]
    call.authorize(taskIds=task_ids)
    tasks = call.ctx.state.tasks
    return [tasks[t] for t in dict.fromkeys(task_ids) if t in tasks]


def statuses(call: Call) -> dict[str, Any]:
    """`queue.statuses`: the statuses of the given tasks that exist (unknown ids are left out)."""
    page, token = paginate(_known(call), call.query)
    return with_token({"statuses": [{"taskId": r.task_id, "status": r.status()} for r in page]},
                      token)


def tasks(call: Call) -> dict[str, Any]:
    """`queue.tasks`: the definitions of the given tasks that exist."""
    page, token = paginate(_known(call), call.query)
    return with_token({"tasks": [{"taskId": r.task_id, "task": copy.deepcopy(r.definition)}
                                 for r in page]}, token)


def _group(call: Call) -> TaskGroup:
    group_id = call.params["taskGroupId"]
    group = call.ctx.state.groups.get(group_id)
    if group is None:
        raise ApiError("ResourceNotFound", f"No task-group with taskGroupId: `{group_id}`",
                       {"taskGroupId": group_id})
    return group


def list_task_group(call: Call) -> dict[str, Any]:
    """`queue.listTaskGroup`: members with definition and status, by taskId, paginated."""
    group = _group(call)
    members = sorted((r for r in call.ctx.state.tasks.values()
                      if r.definition["taskGroupId"] == group.task_group_id),
                     key=lambda r: r.task_id)
    page, token = paginate(members, call.query)
    return with_token({
        "taskGroupId": group.task_group_id, "schedulerId": group.scheduler_id,
        "expires": dates.to_json(group.expires),
        "tasks": [{"status": r.status(), "task": copy.deepcopy(r.definition)} for r in page],
    }, token)


def get_task_group(call: Call) -> dict[str, Any]:
    """`queue.getTaskGroup`."""
    group = _group(call)
    return {"taskGroupId": group.task_group_id, "schedulerId": group.scheduler_id,
            "expires": dates.to_json(group.expires)}


def create_task(call: Call) -> dict[str, Any]:
    """`queue.createTask`, in the order of the real handler."""
    ctx, task_id, body = call.ctx, call.params["taskId"], call.body
    provisioner, worker_type, queue_id = (body.get("provisionerId"), body.get("workerType"),
                                          body.get("taskQueueId"))
    if provisioner and worker_type and queue_id:
        if f"{provisioner}/{worker_type}" != queue_id:
            raise ApiError("InputError", 'taskQueueId must match "provisionerId/workerType"',
                           {"provisionerId": provisioner, "workerType": worker_type,
                            "taskQueueId": queue_id})
    elif provisioner and worker_type:
        body["taskQueueId"] = f"{provisioner}/{worker_type}"
    elif queue_id:
        body["provisionerId"], body["workerType"] = queue_id.split("/", 1)
    else:
        raise ApiError("InputError", "at least a provisionerId and a workerType or a "
                                     'taskQueueId must be provided"')
    if not body.get("projectId"):
        body["projectId"] = "none"

    call.authorize(
        taskId=task_id, priorities=list(PRIORITIES[:PRIORITIES.index(body["priority"]) + 1]),
        routes=body["routes"], scopes=body["scopes"], schedulerId=body["schedulerId"],
        projectId=body["projectId"], taskGroupId=body.get("taskGroupId") or task_id,
        provisionerId=body["provisionerId"], workerType=body["workerType"],
        taskQueueId=body["taskQueueId"])

    body.setdefault("taskGroupId", task_id)
    _check_dates(body, ctx)
    if any(s.endswith("**") for s in body["scopes"]):
        raise ApiError("InputError", "scopes must not end with `**`")

    _ensure_group(ctx, body)
    existing = ctx.state.tasks.get(task_id)
    if existing is not None:
        if any(existing.definition[k] != body[k] for k in _IDENTITY):
            raise ApiError("RequestConflict", f"taskId `{task_id}` already used by another "
                           "task.\nThis could be the result of faulty idempotency!",
                           {"taskId": task_id})
        return {"status": existing.status()}

    _check_dependencies(ctx, task_id, body)
    record = TaskRecord(task_id, _definition(body), retries_left=body["retries"])
    ctx.state.tasks[task_id] = record
    for dependency in record.definition["dependencies"]:
        ctx.state.dependents.setdefault(dependency, []).append(task_id)
        if not satisfies(ctx.state.tasks[dependency], record.definition["requires"]):
            record.blocked_by.add(dependency)
    if not record.blocked_by:
        schedule(ctx, record)
    ctx.stats.task_created(task_id)
    return {"status": record.status()}


def _check_dates(body: dict[str, Any], ctx: Context) -> None:
    """The time rules (`patchAndValidateTaskDef`); normalises the dates in place."""
    now = ctx.clock()
    created, deadline = dates.parse(body["created"]), dates.parse(body["deadline"])
    if created < now - dates.MINUTES_15:
        raise ApiError("InputError", "`created` cannot be in the past (max 15min drift)",
                       {"created": body["created"]})
    if created > now + dates.MINUTES_15:
        raise ApiError("InputError", "`created` cannot be in the future (max 15min drift)",
                       {"created": body["created"]})
    if created > deadline:
        raise ApiError("InputError", "`deadline` cannot be later than `created`",
                       {"created": body["created"], "deadline": body["deadline"]})
    if deadline < now:
        raise ApiError("InputError", "`deadline` cannot be in the past",
                       {"deadline": body["deadline"]})
    days = ctx.max_task_deadline_days
    if deadline - now > timedelta(days=days) + dates.MINUTES_15:
        raise ApiError("InputError", f"`deadline` cannot be more than {days} days into the "
                                     "future", {"deadline": body["deadline"]})
    if not body.get("expires"):
        body["expires"] = dates.to_json(dates.plus_one_year(deadline))
    if deadline > dates.parse(body["expires"]):
        raise ApiError("InputError", "`expires` cannot be before `deadline`",
                       {"deadline": body["deadline"], "expires": body["expires"]})
    for key in ("created", "deadline", "expires"):
        body[key] = dates.normalise(body[key])


def _ensure_group(ctx: Context, body: dict[str, Any]) -> None:
    group_id, scheduler_id = body["taskGroupId"], body["schedulerId"]
    expires = dates.parse(body["expires"])
    group = ctx.state.groups.get(group_id)
    if group is None:
        ctx.state.groups[group_id] = TaskGroup(group_id, scheduler_id, expires)
        return
    if group.scheduler_id != scheduler_id:
        raise ApiError("RequestConflict",
                       f"Task group `{group_id}` contains tasks with a schedulerId other\n"
                       f"than `{scheduler_id}`. All tasks in the same task-group must have\n"
                       "the same schedulerId.",
                       {"taskGroupId": group_id, "schedulerId": scheduler_id})
    group.expires = max(group.expires, expires)


def _check_dependencies(ctx: Context, task_id: str, body: dict[str, Any]) -> None:
    dependencies = body["dependencies"]
    # a task may depend on itself (it then waits for `scheduleTask`)
    missing = [d for d in dependencies if d not in ctx.state.tasks and d != task_id]
    deadline = dates.parse(body["deadline"])
    expiring = [d for d in dependencies if d in ctx.state.tasks and d != task_id
                and dates.parse(ctx.state.tasks[d].definition["expires"]) < deadline]
    if not missing and not expiring:
        return
    message = ""
    if missing:
        message += ("`task.dependencies` references non-existing tasks: \n"
                    + "\n".join(f" * {t}" for t in missing) + "\n"
                    "All taskIds in `task.dependencies` **must** exist\n"
                    "before the task is created.\n")
    if expiring:
        message += ("`task.dependencies` references tasks that expires\n"
                    "before `task.deadline` this is not allowed, see tasks: \n"
                    + "\n".join(f" * {t}," for t in expiring) + "\n"
                    "All taskIds in `task.dependencies` **must** have\n"
                    "`task.expires` greater than the `deadline` for this task.\n")
    raise ApiError("InputError", message, {"dependencies": dependencies,
                                           "missingTaskDependencies": missing,
                                           "expiringTaskDependencies": expiring})


def _definition(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("provisionerId", "workerType", "taskQueueId", "schedulerId", "projectId",
            "taskGroupId", "dependencies", "requires", "routes", "priority", "retries",
            "created", "deadline", "expires", "scopes", "payload", "metadata", "tags", "extra")
    return {k: _json_copy(body[k]) for k in keys}


def _json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists and immutable values): `copy.deepcopy`
    without its memo, which was the largest cost of storing a created task."""
    if type(value) is dict:
        return {key: _json_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_json_copy(item) for item in value]
    return value


HANDLERS: dict[str, Handler] = {
    "queue.task": task,
    "queue.status": status,
    "queue.statuses": statuses,
    "queue.tasks": tasks,
    "queue.createTask": create_task,
    "queue.listTaskGroup": list_task_group,
    "queue.getTaskGroup": get_task_group,
}

"""The notify service's task handler (Taskcluster's services/notify `src/handler.js`), as
records: when a task is resolved for good, each of its routes `notify.<kind>.<target>.on-<event>`
whose event matches the resolution becomes one message the service would send, kept in the
state (`DevTaskcluster.notifications()`); nothing is sent anywhere.

Events: `on-completed`, `on-failed`, `on-exception` match their state, `on-resolved` any of the
three, `on-transition` and the deprecated `on-any` every change (here: the resolution). As in the
service, an `exception` whose reason is `canceled` or `deadline-exceeded` notifies nothing, and a
run that is retried is no resolution. The target is everything between the kind and the event,
so dots in addresses are kept. An email's subject is `task.extra.notify.email.subject` rendered
with json-e over `{task, status, taskId, rootUrl}`, else `Task <state>: <name> - <taskId>`.
"""

from __future__ import annotations

import jsone

from .api import Context
from .state import TaskRecord

KINDS = ("email", "pulse", "matrix-room", "slack-channel")
# the service's `ignoreTaskReasonResolved` default
IGNORED_REASONS = ("canceled", "deadline-exceeded")


def matching_events(state: str) -> frozenset[str]:
    """The `on-<event>` route endings a task resolved as `state` notifies."""
    return frozenset((f"on-{state}", "on-resolved", "on-transition", "on-any"))


def parse_route(route: str) -> tuple[str, str, str] | None:
    """`(kind, target, event)` of a notify route, None for any other route."""
    parts = route.split(".")
    if len(parts) < 4 or parts[0] != "notify" or parts[1] not in KINDS:
        return None
    return parts[1], ".".join(parts[2:-1]), parts[-1]


def subject(ctx: Context, record: TaskRecord) -> str:
    """The email subject the service would use for `record` in its current state."""
    definition = record.definition
    custom = ((definition.get("extra") or {}).get("notify") or {}).get("email") or {}
    if "subject" in custom:
        context = {"task": definition, "status": record.status(), "taskId": record.task_id,
                   "rootUrl": ctx.root_url}
        try:
            return str(jsone.render(custom["subject"], context))
        except jsone.JSONTemplateError as error:  # the service puts the error in the text
            return f"Error parsing custom message: {error}"
    name = (definition.get("metadata") or {}).get("name", "")
    return f"Task {record.state()}: {name} - {record.task_id}"


def task_resolved(ctx: Context, record: TaskRecord) -> None:
    """Record the messages the final resolution of `record` sends (hold the state lock)."""
    state = record.state()
    if state == "exception" and record.runs[-1].get("reasonResolved") in IGNORED_REASONS:
        return
    events = matching_events(state)
    for route in record.definition.get("routes", []):
        parsed = parse_route(route)
        if parsed is None or parsed[2] not in events:
            continue
        kind, target, _ = parsed
        ctx.state.notifications.append({"kind": kind, "target": target,
                                        "subject": subject(ctx, record),
                                        "taskId": record.task_id, "state": state})

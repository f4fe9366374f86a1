"""What happens between a decision's `actions.json` and an action task (pure): the in-tree
action hook fxci generates for a permission (`ciadmin/generate/in_tree_actions.py`), and what
Taskcluster's hooks service renders when someone triggers it (`services/hooks/src/
taskcreator.js`). Used by the local pipeline (`cib dev-up`) to play an action as Treeherder or
the Taskcluster UI would trigger it.
"""

from __future__ import annotations

import copy
from typing import Any

import jsone

from .errors import CibError


def find_action(actions: dict[str, Any], name: str) -> dict[str, Any]:
    """The hook action `name` of an `actions.json` document."""
    found = [a for a in actions.get("actions", []) if a.get("name") == name]
    if not found:
        known = ", ".join(sorted(a.get("name", "?") for a in actions.get("actions", [])))
        raise CibError(f"the decision offers no action {name!r} (it offers: {known or 'none'})")
    action = found[0]
    if action.get("kind") != "hook":
        raise CibError(f"action {name!r} is of kind {action.get('kind')!r}, not a hook")
    return action


def trigger_payload(action: dict[str, Any], task_group_id: str, task_id: str | None,
                    user_input: dict[str, Any]) -> dict[str, Any]:
    """The payload a caller (Treeherder, the UI, fxci's trigger_action) sends `triggerHook`:
    the action's `hookPayload` rendered with the task group, the task and the input."""
    return jsone.render(action["hookPayload"], {"taskGroupId": task_group_id,
                                                 "taskId": task_id, "input": user_input})


def hook_task_template(tcyml: dict[str, Any], permission: str, pull_request: bool = False
                       ) -> dict[str, Any]:
    """The task template of fxci's in-tree action hook for `permission`: `.taskcluster.yml`'s
    first task wrapped in the action context taken from the trigger payload."""
    tasks = tcyml.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise CibError(".taskcluster.yml: `tasks` must be a non-empty list for action hooks")
    repo_url = "payload.decision.repository." + ("base_url" if pull_request else "url")
    scope_kind = "pr-action" if pull_request else "action"
    return {"$let": {
        "tasks_for": "pr-action" if pull_request else "action",
        "action": {
            **{field: f"${{payload.decision.action.{field}}}"
               for field in ("name", "title", "description", "taskGroupId", "symbol",
                             "cb_name")},
            "repo_scope": f"assume:repo:${{{repo_url}[8:]}}:{scope_kind}:{permission}",
            "action_perm": permission},
        "push": {"$eval": "payload.decision.push"},
        "repository": {"$eval": "payload.decision.repository"},
        "input": {"$eval": "payload.user.input"},
        "parameters": {"$eval": "payload.decision['parameters']"},
        "taskId": {"$eval": "payload.user.taskId"},
        "taskGroupId": {"$eval": "payload.user.taskGroupId"},
        "ownTaskId": {"$eval": "taskId"},
    }, "in": copy.deepcopy(tasks[0])}


def render_hook_task(template: dict[str, Any], payload: dict[str, Any], client_id: str,
                     now: str, task_id: str) -> dict[str, Any] | None:
    """The task the hooks service creates when the hook is triggered with `payload` by
    `client_id` (None: the template declined). Like the service, it fills in `created`,
    `deadline` (1 day), `expires` (1 month) and `taskGroupId` (the new task) when absent."""
    task = jsone.render(template, {"firedBy": "triggerHook", "payload": payload,
                                   "clientId": client_id, "now": now, "taskId": task_id})
    if task is None:
        return None
    if "taskId" in task:
        raise CibError("the action hook's task has a taskId; createTask refuses it")
    defaults = jsone.render({"created": {"$fromNow": ""}, "deadline": {"$fromNow": "1 day"},
                             "expires": {"$fromNow": "1 month"}}, {"now": now})
    return {**defaults, "taskGroupId": task_id, **task}

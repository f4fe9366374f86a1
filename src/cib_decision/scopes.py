"""Taskcluster scopes: what creating a task requires, and whether a role grants it (pure).

The rules are the queue's (see Taskcluster's createTask reference): every scope of the task,
`queue:route:<route>` for each route, `queue:create-task:project:<projectId>`,
`queue:scheduler-id:<schedulerId>`, and `queue:create-task:<p>:<provisionerId>/<workerType>` for
the task's priority or any higher one. A granted scope ending in `*` grants every scope that
starts with the part before the `*`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PRIORITIES = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest")


def satisfies(granted: Iterable[str], scope: str) -> bool:
    """True when one of the granted scopes grants `scope`."""
    return any(g == scope or (g.endswith("*") and scope.startswith(g[:-1])) for g in granted)


@dataclass(frozen=True)
class Requirement:
    """Scopes of which at least one must be granted (one alone: that scope)."""

    any_of: tuple[str, ...]

    def met_by(self, granted: Iterable[str]) -> bool:
        granted = list(granted)
        return any(satisfies(granted, scope) for scope in self.any_of)

    def __str__(self) -> str:
        return self.any_of[0] if len(self.any_of) == 1 else " or ".join(self.any_of)


def create_task_requirements(task: dict[str, Any]) -> list[Requirement]:
    """Everything the caller of `queue.createTask(task)` must hold."""
    single = [*task.get("scopes", []),
              *(f"queue:route:{route}" for route in task.get("routes", [])),
              f"queue:create-task:project:{task.get('projectId', 'none')}",
              f"queue:scheduler-id:{task.get('schedulerId', '-')}"]
    priority = task.get("priority", "lowest")
    queue = f"{task['provisionerId']}/{task['workerType']}"
    allowed = PRIORITIES[: PRIORITIES.index(priority) + 1]
    return [*(Requirement((s,)) for s in single),
            Requirement(tuple(f"queue:create-task:{p}:{queue}" for p in allowed))]


def missing_scopes(task: dict[str, Any], granted: Iterable[str]) -> list[str]:
    """The requirements of creating `task` that `granted` does not meet."""
    granted = list(granted)
    return [str(r) for r in create_task_requirements(task) if not r.met_by(granted)]


def role_for_event(tasks_for: str, cron_job: str = "", action_permission: str = "") -> str:
    """The repository role a decision of this event assumes (suffix of `repo:<repo>:`)."""
    if tasks_for == "github-push":
        return "branch:main"
    if tasks_for in ("github-pull-request", "github-pull-request-untrusted"):
        return tasks_for[len("github-"):]
    if tasks_for == "cron":
        return f"cron:{cron_job}"
    if tasks_for == "action":
        return f"action:{action_permission}"
    raise ValueError(f"no role for {tasks_for!r}")


def role_scopes(roles: dict[str, list[str]], role: str, **values: str) -> list[str]:
    """The scopes of `role` from a roles file (entries may end in `*`), with `{name}`
    placeholders filled from `values`."""
    scopes: list[str] = []
    for name, granted in roles.items():
        if name == role or (name.endswith("*") and role.startswith(name[:-1])):
            scopes += [scope.format(**values) for scope in granted]
    return scopes

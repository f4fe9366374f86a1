"""The graphs of the cron jobs of .cron.yml, and their tasks checked against the job's role
(test helper; docs/cron.md)."""

from __future__ import annotations

from typing import Any

from cib_decision.scopes import missing_scopes, role_for_event, role_scopes

from .graphs import generator
from .scopes_support import ROLES, created_tasks


def cron_graph(method: str, environment: str = "production"):
    """The graph a cron decision of target method `method` generates in `environment`."""
    return generator(tasks_for="cron", target_tasks_method=method, environment=environment)


def created_within_role(tgg, job: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The tasks `tgg`'s decision creates, by label, each checked to be within the scopes of
    the role `cron:<job>`; and those scopes."""
    granted = role_scopes(ROLES, role_for_event("cron", cron_job=job), project="images")
    tasks = dict(created_tasks(tgg))
    assert tasks
    for label, definition in tasks.items():
        assert missing_scopes(definition, granted) == [], label
    return tasks, granted


def job_script(tgg, label: str) -> str:
    """The command of the one task (`label`) a cron job's graph runs besides the task
    environment, checked to publish its `artifacts/` as `public/` and to be retried on exit
    75."""
    assert set(tgg.target_task_graph.tasks) == {label, "task-env-cib"}
    task = tgg.target_task_graph.tasks[label].task
    assert {"type": "directory", "path": "src/artifacts", "name": "public"} in \
        task["payload"]["artifacts"]
    assert 75 in task["payload"]["onExitStatus"]["retry"]
    (script,) = [c[-1] for c in task["payload"]["command"]]
    return script

"""The roles and created tasks of the scope tests (test helper): the roles of
taskcluster/roles.yml and the task definitions a decision would create."""

from __future__ import annotations

import yaml
from taskgraph.util.parameterization import resolve_task_references, resolve_timestamps
from taskgraph.util.time import current_json_time

from .conftest import ROOT
from .graphs import DECISION_TASK_ID

ROLES = yaml.safe_load((ROOT / "taskcluster" / "roles.yml").read_text())


def created_tasks(tgg) -> list[tuple[str, dict]]:
    """The task definitions `create_tasks` would send, as taskgraph completes them."""
    graph, label_to_taskid = tgg.morphed_task_graph, tgg.label_to_taskid
    now = current_json_time(datetime_format=True)
    level = tgg.parameters["level"]
    result = []
    for task_id, task in graph.tasks.items():
        definition = resolve_timestamps(now, resolve_task_references(
            task.label, task.task, task_id, DECISION_TASK_ID, label_to_taskid))
        definition.update(taskGroupId=DECISION_TASK_ID, schedulerId=f"cib-level-{level}")
        result.append((task.label, definition))
    return result

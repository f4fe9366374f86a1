"""The `cib` target-tasks method: the directives and the event choose the tasks.

Pull requests get fixed rules that no commit message can widen: a closed pull request gets
only the teardown of its per-PR pools; an open one builds only the keys it changes, deploys
only per-PR pools, never purges anything, and does all that only in environments whose
`pull-requests` is true (elsewhere it gets the config check alone).
"""

from __future__ import annotations

from taskgraph.target_tasks import register_target_task, standard_filter

from ..directives import Directives
from ..selection import Selection, select
from . import fleet as graph_fleet
from .task_env import USES_ENV


def _is_pull_request(parameters) -> bool:
    return parameters["tasks_for"].startswith("github-pull-request")


@register_target_task("cib")
def target_tasks_cib(full_task_graph, parameters, graph_config):
    directives = Directives.from_json(parameters["cib_directives"])
    fleet = graph_fleet.load(graph_fleet.config_dir(graph_config)).fleet
    selection = select(fleet, directives, parameters["cib_environment"])
    if "*" in selection.skipped:  # no-ci, or an environment the commit excludes
        return []
    pull_request = _is_pull_request(parameters)
    if pull_request:
        if parameters["cib_pull_request_action"] == "closed":
            return with_task_env(full_task_graph, [
                label for label, task in full_task_graph.tasks.items()
                if task.kind == "pr-teardown"])
        environment = fleet.environments.get(parameters["cib_environment"])
        changed = parameters["cib_changed_keys"]
        if environment is None or not environment.pull_requests:
            selection = Selection()
        elif changed is not None:
            selection = Selection({k: v for k, v in selection.keys.items() if k in changed},
                                  selection.skipped)

    def wanted(task) -> bool:
        kind, attrs = task.kind, task.attributes
        if kind == "lint":
            return True
        if kind == "pr-teardown":
            return False
        if kind == "purge":
            if pull_request or directives.disable_cleanup:
                return False
            if attrs.get("cib-platform") == "taskcluster":
                return directives.purge_taskcluster_resources
            return True
        chosen = selection.keys.get(attrs.get("cib-key"))
        if chosen is None:
            return False
        if kind in ("worker-pool", "verify"):
            return attrs["cib-pool"] in chosen.pools and not (
                kind == "verify" and directives.no_verify)
        if directives.pool_deploy:
            return False
        if kind == "disk-image":
            return chosen.disk_image
        if kind == "machine-image":
            return attrs["cib-target"] in chosen.targets
        return kind == "tag" and bool(chosen.targets)

    chosen = [label for label, task in full_task_graph.tasks.items()
              if standard_filter(task, parameters) and wanted(task)]
    return with_task_env(full_task_graph, chosen)


def with_task_env(full_task_graph, labels: list[str]) -> list[str]:
    """`labels` plus the task environment when one of them runs cib from it."""
    tasks = full_task_graph.tasks
    if any(tasks[label].attributes.get(USES_ENV) for label in labels):
        labels = [*labels, *(label for label, task in tasks.items() if task.kind == "task-env")]
    return labels

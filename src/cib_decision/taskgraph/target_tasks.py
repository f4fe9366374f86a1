"""The `cib` target-tasks method: the directives and the event choose the tasks."""

from __future__ import annotations

from taskgraph.target_tasks import register_target_task, standard_filter

from ..directives import Directives
from ..selection import select
from . import fleet as graph_fleet


@register_target_task("cib")
def target_tasks_cib(full_task_graph, parameters, graph_config):
    directives = Directives.from_json(parameters["cib_directives"])
    loaded = graph_fleet.load(graph_fleet.config_dir(graph_config))
    selection = select(loaded.fleet, directives, parameters["cib_environment"])
    if "*" in selection.skipped:  # no-ci, or an environment the commit excludes
        return []

    def wanted(task) -> bool:
        kind, attrs = task.kind, task.attributes
        if kind == "lint":
            return True
        if kind == "purge":
            if directives.disable_cleanup:
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

    return [label for label, task in full_task_graph.tasks.items()
            if standard_filter(task, parameters) and wanted(task)]

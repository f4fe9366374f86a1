"""The `cib` target-tasks method: the directives and the event choose the tasks.

Pull requests get fixed rules that no commit message can widen: a closed pull request gets
only the teardown of its per-PR pools; an open one builds only the keys it changes, deploys
only per-PR pools, never purges anything, and does all that only in environments whose
`pull-requests` is true (elsewhere it gets the config check alone).

Targets on clouds cib does not build machine images on, and pools running their images, have
no tasks at all (the loader leaves them out); `unbuilt_tasks` names what that left out.
"""

from __future__ import annotations

from taskgraph.target_tasks import register_target_task, standard_filter

from ..directives import Directives
from ..selection import Selection, select
from . import fleet as graph_fleet
from .items import machine_image_name, needs_disk_image, pool_name
from .parameters import pull_request_may
from .task_env import USES_ENV


def _is_pull_request(parameters) -> bool:
    return parameters["tasks_for"].startswith("github-pull-request")


def _closed_pull_request(parameters) -> bool:
    return _is_pull_request(parameters) and parameters["cib_pull_request_action"] == "closed"


def scope(fleet, directives: Directives, parameters) -> Selection:
    """What the graph for `parameters` builds and deploys: the selection of the directives and
    the environment, narrowed by the pull-request rules above (a closed pull request, or one in
    an environment that takes none, has nothing of the fleet in scope)."""
    selection = select(fleet, directives, parameters["cib_environment"])
    if not _is_pull_request(parameters) or "*" in selection.skipped:
        return selection
    if _closed_pull_request(parameters) or not pull_request_may(parameters, "pull-requests"):
        return Selection()
    changed = parameters["cib_changed_keys"]
    if changed is not None:
        return Selection({k: v for k, v in selection.keys.items() if k in changed},
                         selection.skipped)
    return selection


def unbuilt_tasks(fleet, selection: Selection, directives: Directives) -> dict[str, str]:
    """The tasks the graph has not because they are on clouds cib does not build machine images
    on (selection.not_built), label -> why: those the method below would otherwise have chosen
    for `selection`. `cib plan` lists them."""
    skipped: dict[str, str] = {}
    for chosen in selection.keys.values():
        if not directives.pool_deploy and chosen.unbuilt_targets:
            key = fleet.keys[chosen.key]
            for target, reason in chosen.unbuilt_targets.items():
                skipped[f"machine-image-{machine_image_name(chosen.key, target)}"] = reason
            first = next(iter(chosen.unbuilt_targets.values()))
            if not chosen.disk_image and any(needs_disk_image(key, key.target(t).platform)
                                             for t in chosen.unbuilt_targets):
                skipped[f"disk-image-{chosen.key}"] = first  # only they would have used it
            if not chosen.targets:  # no image left to tag
                skipped[f"tag-{chosen.key}"] = first
        for pool, reason in chosen.unbuilt_pools.items():
            skipped[f"worker-pool-{pool_name(pool)}"] = reason
            if not directives.no_verify:
                skipped[f"verify-{pool_name(pool)}"] = reason
    return skipped


@register_target_task("cib")
def target_tasks_cib(full_task_graph, parameters, graph_config):
    directives = Directives.from_json(parameters["cib_directives"])
    fleet = graph_fleet.load(graph_fleet.config_dir(graph_config)).fleet
    selection = scope(fleet, directives, parameters)
    if "*" in selection.skipped:  # no-ci, or an environment the commit excludes
        return []
    if _closed_pull_request(parameters):
        return with_task_env(full_task_graph, [
            label for label, task in full_task_graph.tasks.items()
            if task.kind == "pr-teardown"])
    pull_request = _is_pull_request(parameters)

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
        if kind in ("machine-image", "test-image"):  # an image is tested where it is built
            return attrs["cib-target"] in chosen.targets
        return kind == "tag" and bool(chosen.targets)

    chosen = [label for label, task in full_task_graph.tasks.items()
              if standard_filter(task, parameters) and wanted(task)]
    return with_task_env(full_task_graph, chosen)


@register_target_task("cib_promote")
def target_tasks_promote(full_task_graph, parameters, graph_config):
    """The `promote` action's graph (actions.py): its one promote task. The task environment
    is not a target: the action mounts the one this revision's push built."""
    return [label for label, task in full_task_graph.tasks.items() if task.kind == "promote"]


def environment_job(full_task_graph, parameters, kind: str) -> list[str]:
    """A cron job of one task per environment: the task of `kind` for the decision's
    environment, with the task environment it runs cib from."""
    return with_task_env(full_task_graph, [
        label for label, task in full_task_graph.tasks.items()
        if task.kind == kind
        and task.attributes.get("cib-environment") == parameters["cib_environment"]])


@register_target_task("cib_drift")
def target_tasks_drift(full_task_graph, parameters, graph_config):
    """The `drift` cron job (.cron.yml): `cib drift` of the decision's environment."""
    return environment_job(full_task_graph, parameters, "drift")


@register_target_task("cib_stats")
def target_tasks_stats(full_task_graph, parameters, graph_config):
    """The `stats` cron job (.cron.yml): `cib stats` of the decision's environment."""
    return environment_job(full_task_graph, parameters, "stats")


def with_task_env(full_task_graph, labels: list[str]) -> list[str]:
    """`labels` plus the task environment when one of them runs cib from it."""
    tasks = full_task_graph.tasks
    if any(tasks[label].attributes.get(USES_ENV) for label in labels):
        labels = [*labels, *(label for label, task in tasks.items() if task.kind == "task-env")]
    return labels

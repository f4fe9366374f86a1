"""The graph's pool tasks run `cib pool` commands that the `cib` command accepts."""

from __future__ import annotations

import pytest

from cib_decision.cli import build_parser
from cib_decision.naming import PR_POOL_DOMAIN

from .graphs import cib_args as graph_cib_args
from .graphs import generator, pr

pytestmark = pytest.mark.usefixtures("graph_env")


def cib_args(task) -> list[str]:
    """The `cib` arguments of a task's command (none for a task that runs no `cib`)."""
    return graph_cib_args(task.task)


def pool_tasks(tgg):
    return {label: task for label, task in tgg.full_task_graph.tasks.items()
            if cib_args(task)[:1] == ["pool"]}


@pytest.mark.parametrize("make", [
    lambda: generator("commit\n\npurge-taskcluster-resources"),
    lambda: pr(),
    lambda: pr(action="closed"),
])
def test_every_pool_command_in_the_graph_is_one_cib_accepts(make):
    tasks = pool_tasks(make())
    assert tasks
    parser = build_parser()
    for label, task in tasks.items():
        args = parser.parse_args(cib_args(task))
        assert args.func.__module__ == "cib_decision.cli.pool", label


def test_the_worker_manager_purge_sweeps_expired_per_pr_pools_and_nothing_else():
    task = generator("commit\n\npurge-taskcluster-resources").full_task_graph.tasks[
        "purge-worker-manager"]
    assert cib_args(task) == ["pool", "sweep"]
    assert sorted(task.task["scopes"]) == [
        "worker-manager:list-worker-pools",
        f"worker-manager:manage-worker-pool:{PR_POOL_DOMAIN}/*"]


def test_per_pr_pool_tasks_pass_their_pull_request_and_time_to_live():
    tasks = pool_tasks(pr(number=23))
    args = cib_args(tasks["worker-pool-gecko-t-win10-64-azure"])
    assert args[:4] == ["pool", "apply", "--pool", "gecko-t/win10-64-azure"]
    parsed = build_parser().parse_args(args)
    assert (parsed.pull_request, parsed.ttl) == (23, "7 days")

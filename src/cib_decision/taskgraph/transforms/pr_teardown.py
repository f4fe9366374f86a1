"""pr-teardown: delete a closed pull request's per-PR pools."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import PR_POOL_DOMAIN
from ..items import PullRequestItem
from ..task_env import USES_ENV
from .common import run_cib, treeherder

transforms = TransformSequence()
transforms.add_validate(PullRequestItem)


@transforms.add
def teardown_task(config, items):
    for item in items:
        number = str(item["pull-request"])
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Delete the per-PR pools of pull request {number}",
            "attributes": {"cib-kind": config.kind, USES_ENV: True},
            "worker-type": "b-linux",
            "worker": run_cib(config.params, "pool", "teardown", "--pull-request", number),
            "scopes": ["worker-manager:list-worker-pools",
                       f"worker-manager:manage-worker-pool:{PR_POOL_DOMAIN}/*"],
            "treeherder": treeherder("W", "teardown", "pull-request"),
        }

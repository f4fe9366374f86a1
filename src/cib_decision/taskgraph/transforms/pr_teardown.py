"""pr-teardown: delete a closed pull request's per-PR pools."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import PR_POOL_DOMAIN
from ..items import PullRequestItem

transforms = TransformSequence()
transforms.add_validate(PullRequestItem)


@transforms.add
def teardown_task(config, items):
    for item in items:
        number = str(item["pull-request"])
        yield {
            "cib-item": item,
            "description": f"Delete the per-PR pools of pull request {number}",
            "cib-run": {"args": ["pool", "teardown", "--pull-request", number]},
            "scopes": ["worker-manager:list-worker-pools",
                       f"worker-manager:manage-worker-pool:{PR_POOL_DOMAIN}/*"],
            "cib-treeherder": {"group": "W", "symbol": "teardown", "platform": "pull-request"},
        }

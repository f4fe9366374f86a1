"""drift: `cib drift` of the decision's environment, read-only (the `drift` cron job).

The task reads worker-manager, the index, public release artifacts and the clouds' image
listings (cloud credentials from the level's secret); it writes nothing anywhere but its own
artifacts: the result as its GitHub check run text (`public/github/customCheckRunText.md`)
and as JSON. Drift exits 1, which fails the task (docs/cron.md says why a failure); 75 (a
service to ask again later) has the queue run it again.
"""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import EnvironmentItem
from .common import CLOUD_SECRETS_SCOPE

transforms = TransformSequence()
transforms.add_validate(EnvironmentItem)

# Every scope the task holds: reads only (docs/cron.md). Pools, the index and public
# artifacts need none but the listing of pools.
DRIFT_SCOPES = ("worker-manager:list-worker-pools", CLOUD_SECRETS_SCOPE)


@transforms.add
def drift_task(config, items):
    for item in items:
        environment = item["environment"]
        yield {
            "cib-item": item,
            "description": f"What drifted in {environment}: config, worker-manager, release "
                           "pointers and cloud images (cib drift)",
            "scopes": list(DRIFT_SCOPES),
            "cib-run": {"args": ["drift", "--environment", environment,
                                 "--artifacts", "artifacts"],
                        "artifacts": True, "max-run-time": 1800},
            "cib-treeherder": {"group": "R", "symbol": environment, "platform": "drift",
                               "kind": "test"},
        }

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
from ..task_env import USES_ENV
from .common import CLOUD_SECRETS_SCOPE, retry_transient, run_cib, treeherder

transforms = TransformSequence()
transforms.add_validate(EnvironmentItem)

# Every scope the task holds: reads only (docs/cron.md). Pools, the index and public
# artifacts need none but the listing of pools.
DRIFT_SCOPES = ("worker-manager:list-worker-pools", CLOUD_SECRETS_SCOPE)


@transforms.add
def drift_task(config, items):
    for item in items:
        environment = item["environment"]
        worker = run_cib(config.params, "drift", "--environment", environment,
                         "--artifacts", "artifacts", artifacts=True)
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": f"What drifted in {environment}: config, worker-manager, release "
                           "pointers and cloud images (cib drift)",
            "attributes": {"cib-kind": config.kind, "cib-environment": environment,
                           USES_ENV: True},
            "worker-type": "b-linux",
            "scopes": list(DRIFT_SCOPES),
            "worker": retry_transient({**worker, "max-run-time": 1800}),
            "treeherder": treeherder("R", environment, "drift", kind="test"),
        }

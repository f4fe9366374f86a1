"""verify: a small task that only a worker of the new pool can claim."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import PoolItem
from .common import directives_of, pools_redeployed

transforms = TransformSequence()
transforms.add_validate(PoolItem)


@transforms.add
def verify_task(config, items):
    redeploy = pools_redeployed(directives_of(config))
    for item in items:
        windows = item["os"] == "windows"
        command = ["echo verified on %COMPUTERNAME%"] if windows else \
            [["/bin/sh", "-c", "echo verified on $(hostname)"]]
        target_pool = item["deploy-pool"]
        yield {
            "cib-item": item,
            "description": f"Run a task on a worker of {target_pool}",
            "attributes": {"cib-deploy-pool": target_pool},
            "dependencies": {"worker-pool": f"worker-pool-{item['name']}"},
            "worker-type": "pool-windows" if windows else "pool-linux",
            # runs no cib: a worker of the pool only says it is there
            "worker": {"command": command, "max-run-time": 600, "env": {},
                       "chain-of-trust": False},
            "cib-cache": {"type": "verify", "rebuild": redeploy},
            "cib-notify": True,
            "cib-treeherder": {"group": "V", "symbol": item["pool"], "platform": item["key"],
                               "kind": "test"},
        }


verify_on_pool = TransformSequence()


@verify_on_pool.add
def run_on_the_pool(config, tasks):
    """After taskgraph's task transforms: claimable only by the pool under test."""
    for task in tasks:
        domain, variant = task["attributes"]["cib-deploy-pool"].split("/", 1)
        task["task"]["provisionerId"], task["task"]["workerType"] = domain, variant
        yield task

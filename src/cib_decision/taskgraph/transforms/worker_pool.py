"""worker-pool: write one pool's definition to worker-manager from the images just built."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...lifecycle.pointers import insert_scopes
from ..items import PoolItem
from .common import directives_of, pools_redeployed, pull_request_args, upstream_by_key

transforms = TransformSequence()
transforms.add_validate(PoolItem)


@transforms.add
def worker_pool_task(config, items):
    directives = directives_of(config)
    pool_deploy = directives.pool_deploy
    redeploy = pools_redeployed(directives)
    ttl: tuple[str, ...] = ()
    if config.params["cib_pull_request"]:  # per-PR pools record when they may be swept
        ttl = ("--ttl", config.graph_config["cib"]["pr-pool-ttl"])
    by_key = upstream_by_key(config)
    for item in items:
        upstream = []
        if not pool_deploy:  # a pool-deploy keeps the newest existing images
            targets = set(item["targets"])
            upstream = sorted(
                task.label for task in by_key.get(item["key"], [])
                if task.kind == "tag" or task.attributes.get("cib-target") in targets)
        target_pool = item["deploy-pool"]
        # The deploy records its release in the environment's pointers; per-PR pools never.
        pointer_scopes = [] if config.params["cib_pull_request"] else insert_scopes(
            config.params["cib_environment"], item["key"], item["pool"])
        yield {
            "cib-item": item,
            "description": f"Deploy worker pool {target_pool} from the images of {item['key']}",
            "attributes": {"cib-deploy-pool": target_pool},
            # Soft: the pool waits for the images this graph builds for it; regions whose
            # image is not rebuilt keep the image they have.
            "soft-dependencies": upstream,
            # Run even when some image builds failed: those regions keep their previous
            # launch config (`cib pool apply` reads which dependencies completed).
            "requires": "all-resolved",
            "scopes": [f"worker-manager:manage-worker-pool:{target_pool}",
                       f"worker-manager:get-worker-pool:{target_pool}",
                       f"worker-manager:provider:{item['provider']}",
                       *pointer_scopes],
            # an apply is idempotent: a lost answer or a 5xx (exit 75) is run again
            "cib-run": {"args": ["pool", "apply", "--pool", item["pool"],
                                 *pull_request_args(config.params), *ttl]},
            # A deploy of the same definition with the same images was done: skip it, unless
            # pool-deploy asks for one.
            "cib-cache": {"type": "worker-pool", "rebuild": redeploy},
            "cib-notify": True,
            "cib-treeherder": {"group": "W", "symbol": item["pool"], "platform": item["key"]},
        }

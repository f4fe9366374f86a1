"""worker-pool: write one pool's definition to worker-manager from the images just built."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...directives import Directives
from .common import attributes, deploy_pool, pull_request_args, run_cib, th_symbol, treeherder

transforms = TransformSequence()


@transforms.add
def worker_pool_task(config, items):
    pool_deploy = Directives.from_json(config.params["cib_directives"]).pool_deploy
    ttl: tuple[str, ...] = ()
    if config.params["cib_pull_request"]:  # per-PR pools record when they may be swept
        ttl = ("--ttl", config.graph_config["cib"]["pr-pool-ttl"])
    for item in items:
        upstream = []
        if not pool_deploy:  # a pool-deploy keeps the newest existing images
            upstream = sorted(
                label for label, task in config.kind_dependencies_tasks.items()
                if task.attributes.get("cib-key") == item["key"] and (
                    task.kind == "tag" or task.attributes.get("cib-target") in item["targets"]))
        target_pool = deploy_pool(config.params, item["pool"])
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Deploy worker pool {target_pool} from the images of {item['key']}",
            "attributes": attributes(item, **{"cib-kind": config.kind,
                                              "cib-deploy-pool": target_pool}),
            # Soft: the pool waits for the images this graph builds for it; regions whose
            # image is not rebuilt keep the image they have.
            "soft-dependencies": upstream,
            "worker-type": "b-linux",
            "scopes": [f"worker-manager:manage-worker-pool:{target_pool}",
                       f"worker-manager:get-worker-pool:{target_pool}",
                       f"worker-manager:provider:{item['provider']}"],
            "worker": run_cib(config.params, "pool", "apply", "--pool", item["pool"],
                              *pull_request_args(config.params), *ttl),
            "treeherder": treeherder("W", th_symbol(item["pool"]), item["key"]),
        }

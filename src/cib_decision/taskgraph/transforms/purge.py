"""purge: remove resources that builds left behind, per cloud region; and expired per-PR pools
from worker-manager (`cib pool sweep`)."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import PR_POOL_DOMAIN
from .common import CLOUD_SECRETS_SCOPE, attributes, run_cib, target_symbol, treeherder

transforms = TransformSequence()


@transforms.add
def purge_task(config, items):
    for item in items:
        if item["platform"] == "taskcluster":
            # worker-manager: delete the per-PR pools whose time to live has passed
            args = ("pool", "sweep")
            symbol, what = "worker-manager", "expired per-PR worker pools"
            scopes = ["worker-manager:list-worker-pools",
                      f"worker-manager:manage-worker-pool:{PR_POOL_DOMAIN}/*"]
        else:
            args = ("purge", "--cloud", item["platform"], "--region", item["region"])
            scopes = [CLOUD_SECRETS_SCOPE]
            symbol = target_symbol(f"{item['platform']}/{item['region']}")
            what = f"orphaned build resources in {item['platform']} {item['region']}"
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Purge {what}",
            "attributes": attributes(item, **{"cib-kind": config.kind}),
            "worker-type": "b-linux",
            "scopes": scopes,
            "worker": run_cib(config.params, *args),
            "treeherder": treeherder("P", symbol, "maintenance"),
        }

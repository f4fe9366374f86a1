"""purge: remove resources that builds left behind, per cloud region (`cib purge`); and expired
per-PR pools from worker-manager (`cib pool sweep`)."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import PR_POOL_DOMAIN
from ..items import CloudItem
from .common import CLOUD_SECRETS_SCOPE, directives_of, target_symbol

transforms = TransformSequence()
transforms.add_validate(CloudItem)

# The clouds `cib purge` cleans up; a region of another cloud gets no purge task. A Google
# region's task covers the zone (and project) of each of the config's Google targets there.
PURGED_PLATFORMS = ("amazon", "azure", "google")


@transforms.add
def purge_task(config, items):
    include_worker_manager = directives_of(config).purge_taskcluster_resources
    for item in items:
        platform = item["platform"]
        if platform == "taskcluster":
            # worker-manager: delete the per-PR pools whose time to live has passed
            args: tuple[str, ...] = ("pool", "sweep")
            symbol, what = "worker-manager", "expired per-PR worker pools"
            scopes = ["worker-manager:list-worker-pools",
                      f"worker-manager:manage-worker-pool:{PR_POOL_DOMAIN}/*"]
        elif platform in PURGED_PLATFORMS:
            args = ("purge", "--cloud", platform, "--region", item["region"])
            if platform == "azure" and include_worker_manager:
                # purge-taskcluster-resources: the worker pools' resource groups too
                args += ("--include-worker-manager",)
            scopes = [CLOUD_SECRETS_SCOPE]
            symbol = target_symbol(f"{platform}/{item['region']}")
            what = f"orphaned build resources in {platform} {item['region']}"
        else:
            continue
        yield {
            "cib-item": item,
            "description": f"Purge {what}",
            "scopes": scopes,
            "cib-run": {"args": list(args)},
            "cib-treeherder": {"group": "P", "symbol": symbol, "platform": "maintenance"},
        }

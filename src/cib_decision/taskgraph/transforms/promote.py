"""promote: the task the `promote` action creates (`cib promote --key K --from F --to T`,
lifecycle/promote.py): release in this decision's environment a key's current release of
another environment, copying images and deploying the key's pools; never builds.

Its one input is the action's (the parameter `cib_promote`), checked against the config here:
the graph of a request that cannot be carried out fails before anything is created."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taskgraph.transforms.base import TransformSequence

from ...errors import CibError
from ...lifecycle.pointers import insert_scopes
from ...signing import secret_name
from .. import fleet as graph_fleet
from ..items import PromoteItem
from .common import CLOUD_SECRETS_SCOPE

transforms = TransformSequence()
transforms.add_validate(PromoteItem)


@transforms.add
def check_request(config, items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """CibError when `to` is not the environment this decision runs for, `from` is the same,
    or the key or an environment is not in the config."""
    fleet = graph_fleet.load(graph_fleet.config_dir(config.graph_config)).fleet
    here = config.params["cib_environment"]
    for item in items:
        key, source, target = item["key"], item["from"], item["to"]
        if target != here:
            raise CibError(f"this decision runs for {here}; trigger the promote action to "
                           f"{target} on a decision of {target}")
        if key not in fleet.keys:
            raise CibError(f"no image key {key!r} in the config")
        for name in (source, target):
            if name not in fleet.environments:
                raise CibError(f"no environment {name!r} in the config")
        if source == target:
            raise CibError(f"from and to are both {source}")
        yield item


def scopes(fleet, key: str, target: str, level: str) -> list[str]:
    """What the promote task needs: the level's cloud credentials, the target environment's
    signing secret (the promoted release is signed there), the key's pools and providers in
    worker-manager, and the key's release and pool pointers in the index."""
    pools = fleet.keys[key].pools
    signing = fleet.environments[target].signing
    return [CLOUD_SECRETS_SCOPE.format(level=level),
            *([f"secrets:get:{secret_name(signing, level)}"] if signing else []),
            *[f"worker-manager:{verb}:{pool.id}" for pool in pools
              for verb in ("manage-worker-pool", "get-worker-pool")],
            *sorted({f"worker-manager:provider:{pool.provider}" for pool in pools}),
            *sorted({scope for pool in pools for scope in insert_scopes(target, key, pool.id)})]


@transforms.add
def promote_task(config, items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    fleet = graph_fleet.load(graph_fleet.config_dir(config.graph_config)).fleet
    level = str(config.params["level"])
    for item in items:
        key, source, target = item["key"], item["from"], item["to"]
        yield {
            "cib-item": item,
            "description": f"Promote the current release of {key} from {source} to {target}",
            # the action mounts the task environment its revision's push built (actions.py)
            "cib-run": {"args": ["promote", "--key", key, "--from", source, "--to", target],
                        "artifacts": True},
            "scopes": scopes(fleet, key, target, level),
            "priority": "lowest",
            "expires-after": "1 year",
            "cib-treeherder": {"group": "W", "symbol": "promote", "platform": key},
        }

"""tag: apply the release tags to every machine image of a key."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from .. import fleet as graph_fleet
from ..items import KeyItem
from ..task_env import USES_ENV
from .common import (
    CLOUD_SECRETS_SCOPE,
    attributes,
    directives_of,
    images_overwritten,
    index_by_digest,
    notify_owners,
    retry_transient,
    run_cib,
    treeherder,
    upstream_by_key,
)

transforms = TransformSequence()
transforms.add_validate(KeyItem)


def signing_scopes(config) -> list[str]:
    """The scope to read the signing secret when the graph's environment signs its releases
    (`{level}` in the secret name is filled in with the other scopes')."""
    loaded = graph_fleet.load(graph_fleet.config_dir(config.graph_config))
    environment = loaded.fleet.environments.get(config.params["cib_environment"])
    if environment is None or environment.signing is None:
        return []
    return [f"secrets:get:{environment.signing.secret}"]


@transforms.add
def tag_task(config, items):
    rebuild = images_overwritten(directives_of(config))
    upstream = upstream_by_key(config)
    signing = signing_scopes(config)
    for item in items:
        # the builds and their smoke tests (a tested key releases only tested images)
        images = [task.label for task in upstream.get(item["key"], [])
                  if task.kind in ("machine-image", "test-image")]
        yield notify_owners(config, item["key"], index_by_digest(
            config, rebuild, "tag", item, {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Tag the machine images of {item['key']}",
            "attributes": attributes(item, **{"cib-kind": config.kind, USES_ENV: True}),
            # Soft: the tag runs over whichever of the key's images this graph builds, so a
            # region filter does not pull the other regions' builds back in.
            "soft-dependencies": sorted(images),
            # A failed region is left out of the release; the others are still released.
            "requires": "all-resolved",
            "worker-type": "b-linux",
            "scopes": [CLOUD_SECRETS_SCOPE, *signing],
            "worker": retry_transient(run_cib(config.params, "image", "tag", "--key",
                                              item["key"], artifacts=True)),
            "treeherder": treeherder("T", "tag", item["key"]),
        }))

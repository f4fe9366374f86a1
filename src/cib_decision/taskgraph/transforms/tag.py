"""tag: apply the release tags to every machine image of a key."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from .. import fleet as graph_fleet
from ..items import KeyItem
from .common import CLOUD_SECRETS_SCOPE, directives_of, images_overwritten, upstream_by_key

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
        yield {
            "cib-item": item,
            "description": f"Tag the machine images of {item['key']}",
            # Soft: the tag runs over whichever of the key's images this graph builds, so a
            # region filter does not pull the other regions' builds back in.
            "soft-dependencies": sorted(images),
            # A failed region is left out of the release; the others are still released.
            "requires": "all-resolved",
            "scopes": [CLOUD_SECRETS_SCOPE, *signing],
            "cib-run": {"args": ["image", "tag", "--key", item["key"]], "artifacts": True},
            "cib-cache": {"type": "tag", "rebuild": rebuild},
            "cib-notify": True,
            "cib-treeherder": {"group": "T", "symbol": "tag", "platform": item["key"]},
        }

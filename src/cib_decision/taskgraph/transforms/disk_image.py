"""disk-image: build a key's disk image (ISO or source image -> VHD/raw), named by digest."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import image_name
from ..items import DiskImageItem
from ..task_env import USES_ENV
from .common import (
    CLOUD_SECRETS_SCOPE,
    attributes,
    build_args,
    directives_of,
    index_by_digest,
    notify_owners,
    retry_transient,
    run_cib,
    treeherder,
)

transforms = TransformSequence()
transforms.add_validate(DiskImageItem)


@transforms.add
def disk_image_task(config, items):
    overwrite = directives_of(config).overwrite_disk_image
    args = build_args(config.params)
    for item in items:
        name = image_name(item["key"], item["digest"], kind="disk",
                          pull_request=config.params["cib_pull_request"])
        yield notify_owners(config, item["key"], index_by_digest(
            config, overwrite, "disk-image", item, {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Build disk image {name} of {item['key']}",
            "attributes": attributes(item, **{"cib-kind": config.kind,
                                              "cib-digest": item["digest"],
                                              USES_ENV: True}),
            "worker-type": "images",
            "scopes": [CLOUD_SECRETS_SCOPE],
            "worker": retry_transient({**run_cib(config.params, "image", "disk", "--key",
                                                 item["key"], *args, artifacts=True),
                                       "max-run-time": 4 * 3600}),
            "treeherder": treeherder("D", "disk", item["key"], kind="build"),
        }))

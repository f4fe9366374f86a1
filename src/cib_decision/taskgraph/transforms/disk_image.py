"""disk-image: build a key's disk image (ISO or source image -> VHD/raw), named by digest."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import image_name
from ..items import DiskImageItem
from .common import CLOUD_SECRETS_SCOPE, build_args, directives_of

transforms = TransformSequence()
transforms.add_validate(DiskImageItem)


@transforms.add
def disk_image_task(config, items):
    overwrite = directives_of(config).overwrite_disk_image
    args = build_args(config.params)
    for item in items:
        name = image_name(item["key"], item["digest"], kind="disk",
                          pull_request=config.params["cib_pull_request"])
        yield {
            "cib-item": item,
            "description": f"Build disk image {name} of {item['key']}",
            "worker-type": "images",
            "scopes": [CLOUD_SECRETS_SCOPE],
            "cib-run": {"args": ["image", "disk", "--key", item["key"], *args],
                        "artifacts": True, "max-run-time": 4 * 3600},
            "cib-cache": {"type": "disk-image", "rebuild": overwrite},
            "cib-notify": True,
            "cib-treeherder": {"group": "D", "symbol": "disk", "platform": item["key"],
                               "kind": "build"},
        }

"""disk-image: build a key's disk image (ISO or source image -> VHD/raw), named by digest."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import image_name
from .common import attributes, run_cib, treeherder

transforms = TransformSequence()


@transforms.add
def disk_image_task(config, items):
    for item in items:
        name = image_name(item["key"], item["digest"], kind="disk")
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Build disk image {name} of {item['key']}",
            "attributes": attributes(item, **{"cib-kind": config.kind,
                                              "cib-digest": item["digest"]}),
            "worker-type": "images",
            "worker": {**run_cib(config.params, "image", "disk", "--key", item["key"]),
                       "max-run-time": 4 * 3600},
            "treeherder": treeherder("D", "disk", item["key"], kind="build"),
        }

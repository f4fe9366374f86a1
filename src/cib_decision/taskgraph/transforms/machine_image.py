"""machine-image: one cloud image per key and target, made from the exact disk image task."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import image_name
from ..items import MachineImageItem
from .common import CLOUD_SECRETS_SCOPE, build_args, directives_of, target_symbol

transforms = TransformSequence()
transforms.add_validate(MachineImageItem)


@transforms.add
def machine_image_task(config, items):
    overwrite = directives_of(config).overwrite_machine_image
    args = build_args(config.params)
    for item in items:
        name = image_name(item["key"], item["digest"],
                          pull_request=config.params["cib_pull_request"])
        dependencies, env = {}, {}
        if item["disk-image"]:
            # The disk image comes from the dependency task itself, never from a `.latest`.
            dependencies["disk-image"] = f"disk-image-{item['key']}"
            env["CIB_DISK_IMAGE_TASK_ID"] = {"task-reference": "<disk-image>"}
        yield {
            "cib-item": item,
            "description": f"Build machine image {name} of {item['key']} for {item['target']}",
            "dependencies": dependencies,
            "worker-type": "images",
            "scopes": [CLOUD_SECRETS_SCOPE],
            # --overwrite: a new image under a new name even though one exists for this digest
            "cib-run": {"args": ["image", "machine", "--key", item["key"],
                                 "--target", item["target"], *args,
                                 *(("--overwrite",) if overwrite else ())],
                        "artifacts": True, "max-run-time": 6 * 3600, "env": env},
            "cib-cache": {"type": "machine-image", "rebuild": overwrite},
            "cib-notify": True,
            "cib-treeherder": {"group": "I", "symbol": target_symbol(item["target"]),
                               "platform": item["key"], "kind": "build"},
        }

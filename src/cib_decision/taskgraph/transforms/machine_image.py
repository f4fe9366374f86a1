"""machine-image: one cloud image per key and target, made from the exact disk image task."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ...naming import image_name
from ..items import MachineImageItem
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
    target_symbol,
    treeherder,
)

transforms = TransformSequence()
transforms.add_validate(MachineImageItem)


@transforms.add
def machine_image_task(config, items):
    overwrite = directives_of(config).overwrite_machine_image
    args = build_args(config.params)
    for item in items:
        name = image_name(item["key"], item["digest"],
                          pull_request=config.params["cib_pull_request"])
        # --overwrite: a new image under a new name even though one exists for this digest
        worker = retry_transient(run_cib(
            config.params, "image", "machine", "--key", item["key"], "--target", item["target"],
            *args, *(("--overwrite",) if overwrite else ()), artifacts=True))
        worker["max-run-time"] = 6 * 3600
        dependencies = {}
        if item["disk-image"]:
            # The disk image comes from the dependency task itself, never from a `.latest`.
            dependencies["disk-image"] = f"disk-image-{item['key']}"
            worker["env"]["CIB_DISK_IMAGE_TASK_ID"] = {"task-reference": "<disk-image>"}
        yield notify_owners(config, item["key"], index_by_digest(
            config, overwrite, "machine-image", item, {
            "label": f"{config.kind}-{item['name']}",
            "description": f"Build machine image {name} of {item['key']} for {item['target']}",
            "attributes": attributes(item, **{"cib-kind": config.kind,
                                              "cib-digest": item["digest"],
                                              USES_ENV: True}),
            "dependencies": dependencies,
            "worker-type": "images",
            "scopes": [CLOUD_SECRETS_SCOPE],
            "worker": worker,
            "treeherder": treeherder("I", target_symbol(item["target"]), item["key"],
                                     kind="build"),
        }))

"""test-image: the smoke tests of one machine image, between its build and the key's tag."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import ImageTestItem
from .common import (
    CLOUD_SECRETS_SCOPE,
    build_args,
    directives_of,
    images_overwritten,
    target_symbol,
)

transforms = TransformSequence()
transforms.add_validate(ImageTestItem)


@transforms.add
def test_image_task(config, items):
    # A rebuilt image is tested again (taskgraph replaces no task whose dependency runs);
    # otherwise an earlier run of these tests on this image is reused.
    overwrite = images_overwritten(directives_of(config))
    args = build_args(config.params)
    for item in items:
        yield {
            "cib-item": item,
            "description": f"Smoke-test the machine image of {item['key']} for "
                           f"{item['target']} ({', '.join(item['tests'])})",
            "dependencies": {"machine-image": f"machine-image-{item['name']}"},
            # Runs after a failed build too, and says there is nothing to test: the key's tag
            # waits for every test task, and a blocked one would hold it until its deadline.
            "requires": "all-resolved",
            "worker-type": "images",
            "scopes": [CLOUD_SECRETS_SCOPE],
            "cib-run": {"args": ["image", "test", "--key", item["key"],
                                 "--target", item["target"], *args],
                        "artifacts": True, "max-run-time": 2 * 3600,
                        # The image comes from the build task itself (or the earlier one it
                        # was replaced by).
                        "env": {"CIB_MACHINE_IMAGE_TASK_ID": {"task-reference":
                                                              "<machine-image>"}}},
            "cib-cache": {"type": "test-image", "rebuild": overwrite},
            "cib-notify": True,
            "cib-treeherder": {"group": "S", "symbol": target_symbol(item["target"]),
                               "platform": item["key"], "kind": "test"},
        }

"""lint: `cib config check` on the pushed revision."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import ConfigItem
from ..task_env import USES_ENV
from .common import run_cib, treeherder

transforms = TransformSequence()
transforms.add_validate(ConfigItem)


@transforms.add
def lint_task(config, items):
    for item in items:
        yield {
            "label": f"{config.kind}-{item['name']}",
            "description": "Validate every config file (cib config check)",
            "attributes": {"cib-kind": config.kind, USES_ENV: True},
            "worker-type": "b-linux",
            "worker": {**run_cib(config.params, "config", "check"), "max-run-time": 600},
            "treeherder": treeherder("L", "config", "config", kind="test"),
        }

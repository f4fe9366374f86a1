"""lint: `cib config check` on the pushed revision."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import ConfigItem

transforms = TransformSequence()
transforms.add_validate(ConfigItem)


@transforms.add
def lint_task(config, items):
    for item in items:
        yield {
            "cib-item": item,
            "description": "Validate every config file (cib config check)",
            "cib-run": {"args": ["config", "check"], "max-run-time": 600},
            "cib-treeherder": {"group": "L", "symbol": "config", "platform": "config",
                               "kind": "test"},
        }

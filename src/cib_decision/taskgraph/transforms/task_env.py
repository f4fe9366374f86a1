"""task-env: build the task environment (cib and its pinned dependencies) once per digest."""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import TaskEnvItem
from ..task_env import ENV_ARTIFACT

transforms = TransformSequence()
transforms.add_validate(TaskEnvItem)

# `pip install --target` makes a directory that runs from wherever it is unpacked; the archive
# holds its contents (so a mount's `directory` is the import path). cib's own source installs
# with the uv its scripts/uv pins (about a tenth of pip's CPU), else with pip into a fresh
# directory (pip --target skips what a failed uv left there).
BUILD = ('git clone --quiet "$CIB_HEAD_REPOSITORY" src && cd src && '
         'git checkout --quiet "$CIB_HEAD_REV" && '
         '{ { uv=$(./scripts/uv python3) && UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1} "$uv" pip '
         'install --quiet --python python3 --target ../env .; } || { rm -rf ../env && '
         'python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location '
         '--target ../env .; }; } && '
         'mkdir -p ../artifacts && tar -czf ../artifacts/cib-env.tar.gz -C ../env .')
# A fleet repository that is not cib-decision's source: the cib-decision its decision runs
# (`task_env.installed_requirement`), from wherever that was installed from.
BUILD_PACKAGE = ('python3 -m pip install --quiet --disable-pip-version-check '
                 '--no-warn-script-location --target env "$CIB_PACKAGE" && '
                 'mkdir -p artifacts && tar -czf artifacts/cib-env.tar.gz -C env .')


@transforms.add
def task_env_task(config, items):
    for item in items:
        yield {
            "cib-item": item,
            "description": "Build the task environment: cib and its pinned dependencies",
            # the environment itself runs no cib: it builds it
            "worker": {
                "command": [["bash", "-c", BUILD_PACKAGE if item.get("package") else BUILD]],
                "env": {"CIB_PACKAGE": item["package"]} if item.get("package") else {
                    "CIB_HEAD_REPOSITORY": config.params["head_repository"],
                    "CIB_HEAD_REV": config.params["head_rev"]},
                "max-run-time": 1800,
                "chain-of-trust": False,
                "artifacts": [{"type": "file", "path": "artifacts/cib-env.tar.gz",
                               "name": ENV_ARTIFACT}],
            },
            "cib-cache": {"type": "task-env"},
            "cib-treeherder": {"group": "E", "symbol": item["name"], "platform": "task-env",
                               "kind": "build"},
        }

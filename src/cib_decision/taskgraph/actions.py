"""cib's Taskcluster actions: `promote` (permission `promote`).

A release engineer triggers `promote` on a decision's task group in the deployment to promote
to (production): its hook runs `.taskcluster.yml` as an `action` with the role
`repo:<repo>:action:promote`, whose action task (`cib action-callback`) calls
`promote_action`, which creates one promote task running `cib promote --key K --from F --to T`
(docs/lifecycle.md). Only holders of the hook's scope may trigger it; the role bounds what the
promote task may do (taskcluster/roles.yml).
"""

from __future__ import annotations

import os
from typing import Any

from taskgraph.actions.registry import register_callback_action
from taskgraph.actions.util import create_task_from_def
from taskgraph.util.cached_tasks import TARGET_CACHE_INDEX

from ..config import DirectorySource, load_fleet
from ..errors import CibError
from ..lifecycle.pointers import insert_scopes
from ..signing import secret_name
from . import task_env
from .fleet import config_dir, repo_root
from .transforms.common import CLOUD_SECRETS_SCOPE, TRANSIENT_EXIT_STATUS, run_cib

PERMISSION = "promote"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
PROMOTE_SCHEMA = {
    "type": "object",
    "description": "Promote a key's current release from one environment to this one.",
    "properties": {
        "key": {"type": "string", "pattern": _NAME, "title": "Image key",
                "description": "The key (config file name) whose release to promote."},
        "from": {"type": "string", "pattern": _NAME, "default": "staging",
                 "title": "From environment",
                 "description": "The environment whose current release is promoted."},
        "to": {"type": "string", "pattern": _NAME, "default": "production",
               "title": "To environment",
               "description": "This decision's environment (checked)."},
    },
    "required": ["key", "from", "to"],
    "additionalProperties": False,
}


def built_task_env(parameters: Any, graph_config: Any) -> str:
    """The task id of the task environment of this revision, built by a graph at this level or
    above (the index of cached tasks); CibError when none was built."""
    from taskgraph.util.taskcluster import find_task_id_batched

    digest, _ = task_env.graph_env(repo_root(graph_config), parameters["head_rev"])
    prefix = graph_config["taskgraph"].get("cached-task-prefix", graph_config["trust-domain"])
    paths = [TARGET_CACHE_INDEX.format(cache_prefix=prefix, level=level, type="task-env",
                                       name="cib", digest=digest)
             for level in reversed(range(int(parameters["level"]), 4))]
    found = find_task_id_batched(paths)
    for path in paths:
        if path in found:
            return found[path]
    raise CibError(f"no task environment was built for {parameters['head_rev']} (digest "
                   f"{digest[:12]}): run the push's graph (its task-env task) first")


def promote_task(parameters: Any, graph_config: Any, input: dict[str, str],
                 task_group_id: str, env_task_id: str) -> dict[str, Any]:
    """The promote task's queue definition (timestamps relative, as taskgraph creates them).
    CibError when `to` is not the environment this decision runs for, or the key or an
    environment is not in the config."""
    key, source, target = input["key"], input["from"], input["to"]
    if target != parameters["cib_environment"]:
        raise CibError(f"this decision runs for {parameters['cib_environment']}; trigger the "
                       f"promote action to {target} on a decision of {target}")
    fleet = load_fleet(DirectorySource(config_dir(graph_config)))
    if key not in fleet.keys:
        raise CibError(f"no image key {key!r} in the config")
    for name in (source, target):
        if name not in fleet.environments:
            raise CibError(f"no environment {name!r} in the config")
    if source == target:
        raise CibError(f"from and to are both {source}")
    level, trust = parameters["level"], graph_config["trust-domain"]
    pool_scopes = [f"worker-manager:{verb}:{pool.id}" for pool in fleet.keys[key].pools
                   for verb in ("manage-worker-pool", "get-worker-pool")]
    providers = sorted({f"worker-manager:provider:{pool.raw['provider']}"
                        for pool in fleet.keys[key].pools})
    signing = fleet.environments[target].signing  # the promoted release is signed there
    signing_scopes = [f"secrets:get:{secret_name(signing, str(level))}"] if signing else []
    worker = run_cib(parameters, "promote", "--key", key, "--from", source, "--to", target,
                     artifacts=True)
    definition = {
        "taskGroupId": task_group_id,
        "provisionerId": f"{trust}-{level}",
        "workerType": "b-linux",
        "created": {"relative-datestamp": "0 seconds"},
        "deadline": {"relative-datestamp": "1 day"},
        "expires": {"relative-datestamp": "1 year"},
        "priority": "lowest",
        "retries": 5,
        "scopes": [CLOUD_SECRETS_SCOPE.format(level=level), *signing_scopes, *pool_scopes,
                   *providers,
                   *sorted({scope for pool in fleet.keys[key].pools
                            for scope in insert_scopes(target, key, pool.id)})],
        "payload": {
            "command": worker["command"],
            "env": worker["env"],
            "maxRunTime": worker["max-run-time"],
            "features": {"taskclusterProxy": True},
            "onExitStatus": {"retry": [TRANSIENT_EXIT_STATUS]},
            "artifacts": worker["artifacts"],
        },
        "metadata": {
            "name": f"promote-{key}",
            "description": f"Promote the current release of {key} from {source} to {target}",
            "owner": os.environ.get("ACTION_OWNER") or "nobody@example.com",
            "source": f"{parameters['head_repository']}/raw/{parameters['head_rev']}/"
                      ".taskcluster.yml",
        },
        "tags": {"kind": "promote", "label": f"promote-{key}"},
    }
    # the task environment this revision's graphs run cib from (task_env.py)
    task_env.add_mount(definition, env_task_id, trust, level)
    return definition


@register_callback_action(
    name="promote",
    title="Promote a release",
    symbol="promote",
    description=("Promote an image key's current release from another environment (staging) "
                 "to this one: copy its images to regions that lack them, deploy the key's "
                 "pools from it and point this environment at it. Builds nothing."),
    permission=PERMISSION,
    order=500,
    context=[],
    available=lambda parameters: not parameters["cib_pull_request"],
    schema=PROMOTE_SCHEMA,
)
def promote_action(parameters, graph_config, input, task_group_id, task_id):
    """Create the promote task in the decision's task group."""
    from slugid import nice

    definition = promote_task(parameters, graph_config, input, task_group_id,
                              built_task_env(parameters, graph_config))
    create_task_from_def(nice(), definition, parameters["level"],
                         graph_config["trust-domain"])

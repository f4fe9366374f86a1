"""What the kinds' transforms use to say what is their own: the `cib` command, Treeherder symbols,
the directives that rebuild or redeploy, upstream tasks by key, notify routes (cib_task.py is
the shared step that turns these into task descriptions)."""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
from typing import Any

from ...directives import Directives
from .. import fleet as graph_fleet
from ..parameters import pull_request_may
from ..task_env import ENV_DIRECTORY

MAX_SYMBOL = 25  # Treeherder's limit for symbols and group symbols
PLATFORM_ABBREVIATIONS = {"amazon": "aws", "azure": "az", "google": "gcp"}


# Symbols and platforms repeat across a graph's tasks (every region's task of a key, every
# task of a platform): each is worked out once per process.
@functools.cache
def th_symbol(text: str) -> str:
    """A Treeherder symbol for `text`: kept when short enough, else shortened with a hash
    so that two long names never share a symbol."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    if len(text) <= MAX_SYMBOL:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{text[:MAX_SYMBOL - 7]}-{digest}"


@functools.cache
def th_platform(name: str) -> str:
    """A Treeherder machine platform (letters, digits, `_` and `-`, at most 50)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:50] + "/opt"


def target_symbol(target_id: str) -> str:
    """The Treeherder symbol of a target (`amazon/us-east-1` is `aws-us-east-1`)."""
    platform, _, rest = target_id.partition("/")
    return th_symbol(f"{PLATFORM_ABBREVIATIONS.get(platform, platform)}-{rest.replace('/', '-')}")


# how tasks run cib: the task environment's modules with the worker's Python
CIB_COMMAND = "python3 -m cib_decision"


def run_cib(params, *args: str, artifacts: bool = False) -> dict[str, Any]:
    """A generic-worker (Linux) payload that checks out the pushed revision and runs `cib`
    from the task environment (task_env.py: the morph mounts it at `cib-env`). With
    `artifacts`, the command's `artifacts/` directory is published as `public/`: only commands
    that write there may say so, since generic-worker fails a task whose declared artifact is
    missing."""
    cib = " ".join(shlex.quote(a) for a in args)
    script = (f'export PYTHONPATH="$PWD/{ENV_DIRECTORY}" && '
              'git clone --quiet "$CIB_HEAD_REPOSITORY" src && cd src && '
              'git checkout --quiet "$CIB_HEAD_REV" && '
              f"exec {CIB_COMMAND} {cib}")
    worker: dict[str, Any] = {
        "command": [["bash", "-c", script]],
        "env": {"CIB_HEAD_REPOSITORY": params["head_repository"],
                "CIB_HEAD_REV": params["head_rev"],
                "CIB_ENVIRONMENT": params["cib_environment"],
                # which secrets the command reads (signing key, cloud credentials)
                "CIB_LEVEL": str(params["level"])},
        "max-run-time": 3600,
        "chain-of-trust": False,
        "taskcluster-proxy": True,
    }
    if artifacts:
        worker["artifacts"] = [{"type": "directory", "path": "src/artifacts", "name": "public"}]
    return worker


# Cloud credentials of image builders and purges, per level: pull requests get level 1's.
CLOUD_SECRETS_SCOPE = "secrets:get:project/cib/level-{level}/clouds"


def build_args(params) -> tuple[str, ...]:
    """`cib image` arguments every builder gets: pull-request names on pull requests, and
    `--keep-resources` when the commit says `disable-cleanup` (builders leave their VMs,
    disks and networks for debugging)."""
    args = pull_request_args(params)
    if Directives.from_json(params["cib_directives"]).disable_cleanup:
        args += ("--keep-resources",)
    return args


def pull_request_args(params) -> tuple[str, ...]:
    """`cib` arguments that make a command work under pull-request names."""
    number = params["cib_pull_request"]
    return ("--pull-request", str(number)) if number else ()


def directives_of(config) -> Directives:
    """The commit message's directives, from the parameters."""
    return Directives.from_json(config.params["cib_directives"])


def images_overwritten(directives: Directives) -> bool:
    """Overwritten images are new images even though their digests are not: what tags or
    deploys them must run again."""
    return directives.overwrite_disk_image or directives.overwrite_machine_image


def pools_redeployed(directives: Directives) -> bool:
    """Deploy pools (and verify them) again: asked for, or their images were overwritten."""
    return directives.pool_deploy or images_overwritten(directives)


def upstream_by_key(config) -> dict[str, list[Any]]:
    """The tasks of the kind-dependencies, grouped by the key they belong to (built once per
    kind, so linking a task to its key's upstream tasks is not a scan of every task)."""
    grouped: dict[str, list[Any]] = {}
    for task in config.kind_dependencies_tasks.values():
        grouped.setdefault(task.attributes.get("cib-key", ""), []).append(task)
    return grouped


NOTIFY_ROUTE = "notify.email.{address}.on-{event}"
# Rendered by Taskcluster's notify service with json-e ({task, status, taskId, rootUrl}).
NOTIFY_SUBJECT = "cib: {label} of {key} ${{status.state}} at {rev}"


def notify_routes(config, key: str) -> list[str]:
    """The notify routes of a task of `key` (docs/notify.md): one per address and event of the
    key's `notify` setting (by default its pools' owners, on failed and exception), none in a
    pull-request graph unless its environment says `notify-pull-requests: true`."""
    if config.params["cib_pull_request"] and \
            not pull_request_may(config.params, "notify-pull-requests"):
        return []
    loaded = graph_fleet.load(graph_fleet.config_dir(config.graph_config))
    return list(_key_routes(loaded, key))


@functools.lru_cache(maxsize=4096)
def _key_routes(loaded: graph_fleet.GraphFleet, key: str) -> tuple[str, ...]:
    # every task of a key gets the same routes (GraphFleet compares by identity: a fleet
    # loaded again is another entry)
    setting = loaded.fleet.keys[key].notify
    return tuple(NOTIFY_ROUTE.format(address=address, event=event)
                 for address in setting.emails for event in setting.events)


def notify_owners(config, key: str, task: dict[str, Any]) -> dict[str, Any]:
    """`task` with the notify routes of `key` and, when it has any, an email subject naming
    the task, the key, the state and the revision."""
    routes = notify_routes(config, key)
    if routes:
        task.setdefault("routes", []).extend(routes)
        subject = NOTIFY_SUBJECT.format(label=task["label"], key=key,
                                        rev=config.params["head_rev"][:12])
        task.setdefault("extra", {}).setdefault("notify", {})["email"] = {"subject": subject}
    return task

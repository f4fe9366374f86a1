"""Decision parameters: what cib adds to taskgraph's, and how the decision task fills them."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from taskgraph.parameters import extend_parameters_schema
from taskgraph.util.schema import Schema

from ..bounds import pull_request_number
from ..changes import compute_changes
from ..config import Fleet, load_fleet
from ..cronjobs import DEFAULT_METHOD
from ..cronjobs import load as load_cron_jobs
from ..cronjobs import target_method as cron_job_method
from ..directives import Directives, Vocabulary, parse_directives
from ..errors import CibError
from ..gitrepo import GitTreeSource, commit_message, open_repo, resolve
from . import fleet as graph_fleet

logger = logging.getLogger(__name__)

CibParameters = Schema.from_dict(
    {
        # The parsed directives of the head commit message (Directives.to_json()).
        "cib_directives": dict,
        # The Taskcluster deployment this decision runs for (a name from environments.yaml).
        "cib_environment": str,
        # The pull request number on pull-request events, else 0.
        "cib_pull_request": int,
        # The pull request event's action as .taskcluster.yml passes it: "closed", or
        # "synchronize" for any open one (opened and reopened too, as chain of trust rebuilds
        # it), else "" (not a pull request).
        "cib_pull_request_action": str,
        # Keys whose images or pools differ between base_rev and head_rev (pull requests build
        # only these); None when not computed, meaning every key.
        "cib_changed_keys": list[str] | None,
        # `cib plan` only: content-addressed tasks done at the base revision, as
        # "<type>/<name>/<digest>" (the offline optimization).
        "cib_built_tasks": list[str] | None,
        # Pull requests only: what each environment lets a pull request do, read from the
        # base revision (`trusted_environments`); None on other events.
        "cib_trusted_environments": dict[str, dict[str, bool]] | None,
        # The `promote` action only: its input ({"key", "from", "to"}), the one item of the
        # promote kind; None on every other graph.
        "cib_promote": dict[str, str] | None,
    },
    name="CibParameters",
    forbid_unknown_fields=False,
    kw_only=True,
)


# What the index-search optimization is replaced by with no deployment to ask (offline.py).
OFFLINE_STRATEGIES = "cib_decision.taskgraph.offline:strategies"


def _defaults(repo_root: str | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "cib_directives": Directives().to_json(), "cib_environment": "production",
        "cib_pull_request": 0, "cib_pull_request_action": "", "cib_changed_keys": None,
        "cib_built_tasks": None, "cib_trusted_environments": None, "cib_promote": None}
    if _offline():
        defaults["optimize_strategies"] = OFFLINE_STRATEGIES
    return defaults


def _offline() -> bool:
    """No Taskcluster deployment to search the index of, outside a task: taskgraph's own
    command line (`taskgraph optimized -p FILE`) run on a release engineer's machine without
    TASKCLUSTER_ROOT_URL. Parameter sets that lack `optimize_strategies` then optimize as
    `cib plan --no-base` does (offline.py: nothing counts as built but what `cib_built_tasks`
    lists) instead of failing half-way with taskgraph's traceback; said once per process. In a
    task (TASK_ID) taskgraph's own error stands: a decision never plans without its index."""
    from taskgraph.util import taskcluster as tc_util

    if (os.environ.get("TASKCLUSTER_ROOT_URL") or os.environ.get("TASKCLUSTER_PROXY_URL")
            or tc_util.PRODUCTION_TASKCLUSTER_ROOT_URL or os.environ.get("TASK_ID")):
        return False
    _say_offline()
    return True


@functools.cache
def _say_offline() -> None:
    logger.warning("TASKCLUSTER_ROOT_URL is not set: no index to search, so the graph is "
                   "optimized offline (%s): no image counts as built. Set "
                   "TASKCLUSTER_ROOT_URL to optimize against a deployment's index.",
                   OFFLINE_STRATEGIES)


extend_parameters_schema(CibParameters, defaults_fn=_defaults)


def environment_for_root_url(fleet, root_url: str | None) -> str:
    """The environment whose root URL is `root_url` (the first environment when unset)."""
    for environment in fleet.environments.values():
        if root_url and environment.root_url.rstrip("/") == root_url.rstrip("/"):
            return environment.name
    return next(iter(fleet.environments))


def trusted_environments(base: Fleet | None) -> dict[str, dict[str, bool]]:
    """What each environment lets a pull request do (`pull-requests`, `notify-pull-requests`),
    from the fleet at the pull request's base revision: a pull request's own edit of
    `environments.yaml` changes nothing for itself. Empty (no environment takes the pull
    request) when the base revision has no config that loads."""
    if base is None:
        return {}
    return {name: {"pull-requests": environment.pull_requests,
                   "notify-pull-requests": environment.notify_pull_requests}
            for name, environment in base.environments.items()}


def pull_request_may(parameters, setting: str) -> bool:
    """True when the decision's environment allows `setting` (`pull-requests`,
    `notify-pull-requests`) to this pull request, by the base revision's config; False for
    a pull request decision whose parameters lack that policy (fail closed)."""
    trusted = parameters.get("cib_trusted_environments") or {}
    return bool((trusted.get(parameters["cib_environment"]) or {}).get(setting))


def decision_parameters(graph_config, parameters) -> None:
    """Fill cib's parameters in the decision task (taskgraph builds them strictly there).

    Directives come from the head commit message; the environment from CIB_ENVIRONMENT or
    the deployment's root URL; the pull request number from CIB_PULL_REQUEST_NUMBER. A pull
    request's environment and what that environment lets it do come from the base revision's
    config (`trusted_environments`).
    """
    fleet = graph_fleet.load(graph_fleet.config_dir(graph_config)).fleet
    message = commit_message(open_repo(graph_fleet.repo_root(graph_config)), parameters["head_rev"])
    parameters["cib_directives"] = parse_directives(
        message, Vocabulary.from_fleet(fleet)).to_json()
    pull_request = str(parameters.get("tasks_for", "")).startswith("github-pull-request")
    parameters["cib_pull_request"] = pull_request_number(
        os.environ.get("CIB_PULL_REQUEST_NUMBER"), pull_request)
    base = base_fleet(graph_fleet.repo_root(graph_config), graph_fleet.config_dir(graph_config),
                      parameters.get("base_rev")) if pull_request else None
    parameters["cib_environment"] = os.environ.get("CIB_ENVIRONMENT") or \
        environment_for_root_url(base or fleet, os.environ.get("TASKCLUSTER_ROOT_URL"))
    parameters["cib_trusted_environments"] = trusted_environments(base) if pull_request \
        else None
    parameters["cib_pull_request_action"] = os.environ.get("CIB_PULL_REQUEST_ACTION", "")
    parameters["cib_changed_keys"] = None
    parameters["cib_built_tasks"] = None
    parameters["cib_promote"] = None  # the promote action sets it (actions.py)
    # Our target method applies the directives and the event's rules; taskgraph's "default"
    # would run everything. An explicit --target-tasks-method (or DONTBUILD's "nothing") stays.
    # A cron job's method comes from .cron.yml (cronjobs.py).
    if parameters.get("target_tasks_method") in (None, "default"):
        parameters["target_tasks_method"] = cron_target_method(
            graph_fleet.repo_root(graph_config), os.environ.get("CIB_CRON_JOB", "")) \
            if parameters.get("tasks_for") == "cron" else DEFAULT_METHOD
    if parameters["cib_pull_request"]:
        parameters["cib_changed_keys"] = changed_keys(base, fleet, parameters.get("base_rev"),
                                                      parameters["head_rev"])


def cron_target_method(repo_root: Path, job_name: str) -> str:
    """The target-tasks method of cron job `job_name` by the repository's `.cron.yml`."""
    return cron_job_method(load_cron_jobs(Path(repo_root)), job_name)


@functools.cache
def base_fleet(repo_root: Path, config_dir: Path, base_rev: str | None) -> Fleet | None:
    """The fleet at the base revision, read once per process (the decision's parameters and
    its check run text both ask); None, with a warning, when there is none or it does not
    load."""
    if not base_rev:
        return None
    try:
        return fleet_at(repo_root, config_dir, base_rev)
    except (CibError, ValueError) as exc:
        logger.warning("the base revision's config cannot be read (%s): a pull request may "
                       "do nothing but the config check; the check run compares with nothing",
                       exc)
        return None


def fleet_at(repo_root: Path, config_dir: Path, rev: str) -> Fleet | None:
    """The fleet of `config_dir` at revision `rev` (None: the revision has no config
    directory). CibError when the revision or its config cannot be read."""
    root = repo_root.resolve()
    source = GitTreeSource(resolve(open_repo(root), rev),
                           str(config_dir.resolve().relative_to(root)))
    return load_fleet(source) if source.exists else None


def changed_keys(base: Fleet | None, head: Fleet, base_rev: str | None,
                 head_rev: str) -> list[str] | None:
    """Keys whose images or pools change between the base revision's fleet (read once by the
    decision, `base_fleet`) and the head's; None (every key) when the base could not be
    read, so a pull request never silently skips its images."""
    if base is None:
        return None
    return compute_changes(base, head, base_rev or "", head_rev).changed_keys()

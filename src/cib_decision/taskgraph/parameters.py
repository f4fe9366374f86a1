"""Decision parameters: what cib adds to taskgraph's, and how the decision task fills them."""

from __future__ import annotations

import os
from typing import Any

from taskgraph.parameters import extend_parameters_schema
from taskgraph.util.schema import Schema

from ..directives import Directives, Vocabulary, parse_directives
from ..gitrepo import commit_message, open_repo
from . import fleet as graph_fleet

CibParameters = Schema.from_dict(
    {
        # The parsed directives of the head commit message (Directives.to_json()).
        "cib_directives": dict,
        # The Taskcluster deployment this decision runs for (a name from environments.yaml).
        "cib_environment": str,
        # The pull request number on pull-request events, else 0.
        "cib_pull_request": int,
    },
    name="CibParameters",
    forbid_unknown_fields=False,
    kw_only=True,
)


def _defaults(repo_root: str | None = None) -> dict[str, Any]:
    return {"cib_directives": Directives().to_json(), "cib_environment": "production",
            "cib_pull_request": 0}


extend_parameters_schema(CibParameters, defaults_fn=_defaults)


def environment_for_root_url(fleet, root_url: str | None) -> str:
    """The environment whose root URL is `root_url` (the first environment when unset)."""
    for environment in fleet.environments.values():
        if root_url and environment.root_url.rstrip("/") == root_url.rstrip("/"):
            return environment.name
    return next(iter(fleet.environments))


def decision_parameters(graph_config, parameters) -> None:
    """Fill cib's parameters in the decision task (taskgraph builds them strictly there).

    Directives come from the head commit message; the environment from CIB_ENVIRONMENT or
    the deployment's root URL; the pull request number from CIB_PULL_REQUEST_NUMBER.
    """
    fleet = graph_fleet.load(graph_fleet.config_dir(graph_config)).fleet
    message = commit_message(open_repo(graph_fleet.repo_root(graph_config)), parameters["head_rev"])
    parameters["cib_directives"] = parse_directives(
        message, Vocabulary.from_fleet(fleet)).to_json()
    parameters["cib_environment"] = os.environ.get("CIB_ENVIRONMENT") or \
        environment_for_root_url(fleet, os.environ.get("TASKCLUSTER_ROOT_URL"))
    parameters["cib_pull_request"] = int(os.environ.get("CIB_PULL_REQUEST_NUMBER") or 0)

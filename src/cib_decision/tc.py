"""Taskcluster client options for `cib` commands (adapter)."""

from __future__ import annotations

import os
from typing import Any

import taskcluster

from .errors import CibError


def client_options() -> dict[str, Any]:
    """Options for `taskcluster.<Service>(options)`: inside a task with taskcluster-proxy,
    `TASKCLUSTER_PROXY_URL` as root URL and no credentials (the proxy signs requests with the
    task's scopes); otherwise `TASKCLUSTER_ROOT_URL`, `TASKCLUSTER_CLIENT_ID` and
    `TASKCLUSTER_ACCESS_TOKEN` (`taskcluster.optionsFromEnvironment`)."""
    proxy = os.environ.get("TASKCLUSTER_PROXY_URL")
    if proxy:
        return {"rootUrl": proxy}
    options = taskcluster.optionsFromEnvironment()
    if not options.get("rootUrl"):
        raise CibError("no Taskcluster deployment: set TASKCLUSTER_ROOT_URL (and "
                       "TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN), or run inside a task "
                       "with taskcluster-proxy (TASKCLUSTER_PROXY_URL)")
    return options

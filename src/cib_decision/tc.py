"""The Taskcluster adapter: client options for `cib` commands, and Taskcluster errors as ours."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import taskcluster

from .errors import CibError, TransientError


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


# --- errors -----------------------------------------------------------------------------------

# Where a Taskcluster service's 403 message lists what is missing (services' lib-api:
# middleware/auth.js), then what the request needed.
_MISSING = re.compile(r"missing the following scopes:\s*```\s*(.*?)\s*```", re.S)
_REQUIRED = re.compile(r"satisfy the following scope expression:\s*```\s*(.*?)\s*```", re.S)


def reason(exc: BaseException) -> str:
    """A Taskcluster error's own message, without the request details the services append."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = (message or str(exc) or type(exc).__name__).split("\n\n---")[0].strip()
    return text.splitlines()[0] if text else type(exc).__name__


def missing_scopes(exc: BaseException) -> str | None:
    """The scopes a 403 says the caller lacks (else the expression the request needed), in one
    line: `queue:create-task:...`, or a compact expression (`{"AnyOf": [...]}`); None when the
    error does not say."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return None
    found = _MISSING.search(message) or _REQUIRED.search(message)
    if found is None:
        return None
    try:
        expression = json.loads(found.group(1))
    except ValueError:
        return " ".join(found.group(1).split())
    return expression if isinstance(expression, str) else json.dumps(
        expression, separators=(", ", ": "))


def failure(service: str, doing: str, exc: BaseException,
            refused: type[CibError] = CibError) -> CibError:
    """One Taskcluster error as our error, the same way for every service: a lost connection or
    a 5xx is transient (exit 75, retried by the worker); a 403 names the scopes the caller
    lacks; any other refusal is `refused` with the service's status and message."""
    from taskcluster.exceptions import TaskclusterConnectionError

    status = getattr(exc, "status_code", None)
    if isinstance(exc, TaskclusterConnectionError) or status is None or status >= 500:
        return TransientError(f"{service} failed to {doing}"
                              + (f" ({status})" if status else "") + f": {reason(exc)}")
    if status == 403:
        missing = missing_scopes(exc)
        return refused(f"{service} refused to {doing} (403): insufficient scopes: "
                       + (f"the credentials lack {missing}" if missing else reason(exc)))
    if status == 401:
        return refused(f"{service} refused to {doing} (401): the credentials were not "
                       f"accepted: {reason(exc)}")
    return refused(f"{service} refused to {doing} ({status}): {reason(exc)}")

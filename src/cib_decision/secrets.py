"""Reading a Taskcluster secret (adapter): inside a task through taskcluster-proxy (the task's
scopes), elsewhere with the credentials of the environment (`tc.client_options`).

Every failure is one clear error: a missing (or expired) secret and a refused scope are
`CibError` (exit 2: the config or the roles must change), a service or network error that a
later attempt may not meet is `TransientError` (exit 75: the task is retried).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import taskcluster

from .errors import CibError
from .tc import Secrets, call, client_options


class MissingSecret(CibError):
    """A secret that does not exist (or has expired)."""


LEVEL_VARIABLE = "CIB_LEVEL"
DEFAULT_LEVEL = "3"  # outside a task: the level of production graphs, the strictest


def task_level(environ: Mapping[str, str] | None = None) -> str:
    """The level of the task (`CIB_LEVEL`, which every cib task sets), whose secrets it reads
    (`project/cib/level-<level>/...`); 3 when unset. CibError when malformed."""
    value = (os.environ if environ is None else environ).get(LEVEL_VARIABLE) or DEFAULT_LEVEL
    if not re.fullmatch(r"[1-9]", value):
        raise CibError(f"{LEVEL_VARIABLE}={value!r} is not a Taskcluster level (1-9)")
    return value


def read_secret(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The value (a JSON object) of secret `name`. `options` are the taskcluster client's
    (default: `tc.client_options()`, which retries server errors 5 times). A missing or
    expired secret is MissingSecret; other failures are `tc.call`'s (transient, or the
    scope the credentials lack)."""
    client: Secrets = taskcluster.Secrets(client_options() if options is None else options)
    answer = call("the secrets service", f"read secret {name}", lambda: client.get(name),
                  allow=(404, 410))
    if answer in (404, 410):
        raise MissingSecret(f"no secret {name} (missing or expired): store it with "
                            f"`secrets.set` (scope secrets:set:{name})")
    value = answer.get("secret") if isinstance(answer, dict) else None
    if not isinstance(value, dict):
        raise CibError(f"secret {name} is not a JSON object")
    return value


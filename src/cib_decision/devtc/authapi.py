"""The auth service's methods a task calls (`services/auth/src/v1.js`): `currentScopes`,
which taskgraph's action callback asks through the task's proxy before it creates anything
(`sanity_check_task_scope`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .api import Call, Handler


def current_scopes(call: Call) -> dict[str, Any]:
    """`currentScopes`: the caller's scopes, expanded (roles, authorizedScopes, a
    certificate's), as the service answers them; none without credentials."""
    return {"scopes": normalized(call.caller.scopes)}


def normalized(scopes: Iterable[str]) -> list[str]:
    """Sorted, without duplicates or scopes another one's `*` covers (as the service's
    scope set normalization returns them: `["*"]` for the root client)."""
    unique = set(scopes)
    stars = [s[:-1] for s in unique if s.endswith("*")]
    return sorted(s for s in unique
                  if not any(s != f"{p}*" and s.startswith(p) for p in stars))


HANDLERS: dict[str, Handler] = {
    "auth.currentScopes": current_scopes,
}

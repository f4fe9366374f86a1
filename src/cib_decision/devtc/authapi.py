"""The auth service's methods tasks and workers call (`services/auth/src/v1.js`):
`currentScopes`, which taskgraph's action callback asks through the task's proxy before it
creates anything (`sanity_check_task_scope`), and `expandScopes`, which generic-worker asks
before it grants a task a feature (`scopes.Given.Satisfies`: a task's scopes may be roles)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .api import Call, Handler


def current_scopes(call: Call) -> dict[str, Any]:
    """`currentScopes`: the caller's scopes, expanded (roles, authorizedScopes, a
    certificate's), as the service answers them; none without credentials."""
    return {"scopes": normalized(call.caller.scopes)}


def expand_scopes(call: Call) -> dict[str, Any]:
    """`expandScopes`: the given scopes with the roles they assume expanded (the deployment's
    repository roles), normalized."""
    call.authorize()
    return {"scopes": normalized(call.ctx.clients.expand(call.body.get("scopes") or []))}


def normalized(scopes: Iterable[str]) -> list[str]:
    """Sorted, without duplicates or scopes another one's `*` covers (as the service's
    scope set normalization returns them: `["*"]` for the root client)."""
    unique = set(scopes)
    stars = [s[:-1] for s in unique if s.endswith("*")]
    return sorted(s for s in unique
                  if not any(s != f"{p}*" and s.startswith(p) for p in stars))


HANDLERS: dict[str, Handler] = {
    "auth.currentScopes": current_scopes,
    "auth.expandScopes": expand_scopes,
}

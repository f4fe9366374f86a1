"""The secrets service: small JSON objects stored by name, each with an expiry, guarded by the
scopes `secrets:get:<name>` (read) and `secrets:set:<name>` (write and remove), as
`services/secrets` does it. Routes, scopes and schemas come from the genuine references.json
like the other services'; the rules below are the ones the service makes in code:

- `set` creates or replaces (the body's `secret` and `expires`); an `expires` in the past is
  accepted, and the secret can then no longer be read;
- `get` answers 404 `Secret not found` for a missing secret and for an expired one (the
  database function reads only unexpired rows); the scope check comes first, so a caller
  without the scope gets 403 whether or not the secret exists;
- `remove` succeeds whether or not the secret exists;
- `list` names the unexpired secrets, sorted, paginated with `continuationToken` and `limit`;
  its scope `secrets:list-secrets` is one every caller holds.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from . import dates
from .api import Call, Context, Handler
from .apierror import ApiError
from .pagination import paginate, with_token
from .state import Secret


def store(ctx: Context, name: str, value: dict[str, Any], expires: datetime) -> Secret:
    """Create or replace secret `name` (what `set` does, for the harness too)."""
    secret = Secret(name, copy.deepcopy(value), expires)
    ctx.state.secrets[name] = secret
    return secret


def _live(ctx: Context, name: str) -> Secret | None:
    secret = ctx.state.secrets.get(name)
    if secret is None or secret.expires < ctx.clock():
        return None
    return secret


def set_secret(call: Call) -> dict[str, Any]:
    """`secrets.set`: create or update."""
    store(call.ctx, call.params["name"], call.body["secret"], dates.parse(call.body["expires"]))
    return {}


def remove(call: Call) -> dict[str, Any]:
    """`secrets.remove`: delete; a missing secret is no error."""
    call.ctx.state.secrets.pop(call.params["name"], None)
    return {}


def get(call: Call) -> dict[str, Any]:
    """`secrets.get`: the secret and its expiry; 404 when missing or expired."""
    secret = _live(call.ctx, call.params["name"])
    if secret is None:
        raise ApiError("ResourceNotFound", "Secret not found")
    return secret.serialize()


def list_secrets(call: Call) -> dict[str, Any]:
    """`secrets.list`: the names of the unexpired secrets, one page at a time."""
    names = sorted(n for n in call.ctx.state.secrets if _live(call.ctx, n) is not None)
    page, token = paginate(names, call.query)
    return with_token({"secrets": page}, token)


HANDLERS: dict[str, Handler] = {
    "secrets.set": set_secret,
    "secrets.remove": remove,
    "secrets.get": get,
    "secrets.list": list_secrets,
}

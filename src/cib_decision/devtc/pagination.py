"""Offset pagination as `libraries/api` does it: `limit` (at most 1000) items from the offset
carried by an opaque `continuationToken`, and a token only when more items follow (pure)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from .apierror import ApiError

T = TypeVar("T")
MAX_LIMIT = 1000


def paginate(items: list[T], query: dict[str, str],
             max_limit: int = MAX_LIMIT) -> tuple[list[T], str | None]:
    """One page of `items` and the token of the next page (None on the last page)."""
    size = min(int(query.get("limit") or max_limit), max_limit)
    offset = _decode(query.get("continuationToken"))
    page = items[offset:offset + size]
    following = offset + size
    return page, (_encode(following) if len(items) > following and following else None)


def with_token(body: dict[str, Any], token: str | None) -> dict[str, Any]:
    """`body` with `continuationToken` set when there is one."""
    if token:
        body["continuationToken"] = token
    return body


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ApiError("InputError", "Invalid continuation token", {"token": token}) from None
    if not isinstance(offset, int) or offset < 0:
        raise ApiError("InputError", "Invalid continuation token", {"token": token})
    return offset

"""Error replies in the shape every Taskcluster service sends (pure).

`{"code", "message", "requestInfo": {"method", "params", "payload", "time"}}`, where the message
ends with a `---` block naming the method, code, status and time, as `libraries/api` does.
"""

from __future__ import annotations

import json
from typing import Any

ERROR_CODES: dict[str, int] = {
    "MalformedPayload": 400,
    "InvalidRequestArguments": 400,
    "InputValidationError": 400,
    "InputError": 400,
    "AuthenticationFailed": 401,
    "InsufficientScopes": 403,
    "ResourceNotFound": 404,
    "RequestConflict": 409,
    "ResourceExpired": 410,
    "InputTooLarge": 413,
    "InternalServerError": 500,
    # worker-manager only
    "ProviderSetupFailed": 503,
    # object only
    "NoMatchingMethod": 406,
    "NoMatchingBackend": 400,
    # what a proxy in front of a service answers; only injected as faults
    "BadGateway": 502,
    "ServiceUnavailable": 503,
}


class ApiError(Exception):
    """An error reply: raise it from a handler and the pipeline turns it into a response."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        """The HTTP status of this error code."""
        return ERROR_CODES[self.code]


def error_body(error: ApiError, method: str, params: dict[str, str], payload: Any,
               time: str) -> dict[str, Any]:
    """The JSON body of an error reply for API method `method`."""
    message = "\n".join([
        error.message,
        "",
        "---",
        "",
        f"* method:     {method}",
        f"* errorCode:  {error.code}",
        f"* statusCode: {error.status}",
        f"* time:       {time}",
    ])
    return {"code": error.code, "message": message,
            "requestInfo": {"method": method, "params": params, "payload": payload,
                            "time": time}}


def pretty(value: Any) -> str:
    """A value as the services print it inside messages (`JSON.stringify(v, null, 2)`)."""
    return value if isinstance(value, str) else json.dumps(value, indent=2)

"""The request pipeline every API method goes through, in the order Taskcluster's
`libraries/api` applies it: find the route, parse the body, check scopes that depend on the URL
alone, check URL parameters and the query, validate the body against the input schema (filling
its defaults), run the handler (which checks the remaining scopes), validate the reply against
the output schema. No sockets here: `Api.handle` maps a `Request` to a `Reply`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from . import dates
from .apierror import ApiError, error_body, pretty
from .auth import Caller, Client, Clients, authenticate
from .expressions import render, unsatisfied
from .faults import Stats
from .reference import Entry, References
from .schemas import Schemas
from .state import State

INPUT_LIMIT = 10 * 1024 * 1024
SLUGID = r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"
TASK_QUEUE_ID = r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"
_GENERIC_ID = r"^[a-zA-Z0-9-_]{1,38}$"
_NAMESPACE = r"^([a-zA-Z0-9_!~*'()%-]+\.)*[a-zA-Z0-9_!~*'()%-]+$"

# URL parameter patterns, per service (the `params` of each service's APIBuilder).
PARAM_PATTERNS: dict[str, dict[str, str]] = {
    "queue": {"taskId": SLUGID, "taskGroupId": SLUGID, "taskQueueId": TASK_QUEUE_ID,
              "provisionerId": _GENERIC_ID, "workerType": _GENERIC_ID,
              "workerGroup": _GENERIC_ID, "workerId": _GENERIC_ID, "runId": r"^[1-9]*[0-9]+$",
              "name": r"^[\x20-\x7e]+$"},
    "index": {"namespace": _NAMESPACE, "indexPath": _NAMESPACE},
    "worker-manager": {"workerPoolId": TASK_QUEUE_ID, "workerGroup": r"^([a-zA-Z0-9-_]{1,38})$",
                       "workerId": r"^([a-zA-Z0-9-_]{1,38})$"},
    "object": {"name": r"^[\x20-\x7e]+$", "projectId": r"^([a-zA-Z0-9._/-]*)$"},
}
QUERY_PATTERNS = {"continuationToken": r".", "limit": r"^[0-9]+$",
                  "includeArchived": r"^(true|false)$"}


def _never_closed() -> bool:
    return False


@dataclass(frozen=True)
class Request:
    """One HTTP request as received: `path` and `query` are raw (still percent-encoded), `url`
    the full URL the client signed, header names in lower case. `closed()` tells whether the
    client has gone away (a long poll then stops, as the queue's does on `close`)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    url: str
    closed: Callable[[], bool] = field(default=_never_closed, compare=False)


@dataclass
class Reply:
    """A response: JSON `body` (or raw bytes with `content_type`), status and extra headers.
    `checked=False` sends it without the output schema check, as a service's
    `res.status(..).json(..)` does (the queue's 424 for error artifacts)."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    checked: bool = True

    def encoded(self) -> bytes:
        """The body as bytes on the wire."""
        if isinstance(self.body, bytes):
            return self.body
        if self.content_type == "application/json":
            return json.dumps(self.body).encode()
        return str(self.body).encode()


@dataclass
class Timeouts:
    """The queue's timing settings, in seconds: `claim` (claimTimeout: a claim's takenUntil is
    this far ahead), `claim_work` (how long claimWork waits for work, 20 in the real queue),
    `deadline_delay` (deadlineDelay: how long after its deadline an unresolved task is resolved
    `deadline-exceeded`)."""

    claim: float = 1200.0
    claim_work: float = 20.0
    deadline_delay: float = 60.0


@dataclass
class Context:
    """What the handlers share: state, schemas, clients, the deployment's settings."""

    state: State
    schemas: Schemas
    references: References
    clients: Clients
    stats: Stats
    root_url: str
    providers: dict[str, str]
    index_client: Client  # signs the index's redirects to private artifacts
    queue_client: Client  # issues task credentials
    clock: Callable[[], datetime] = dates.now
    max_task_deadline_days: int = 5
    timeouts: Timeouts = field(default_factory=Timeouts)


class Call:
    """One API call inside the pipeline, as a handler sees it."""

    def __init__(self, ctx: Context, entry: Entry, request: Request, params: dict[str, str],
                 query: dict[str, str]):
        self.ctx = ctx
        self.entry = entry
        self.request = request
        self.params = params
        self.query = query
        self.body: Any = {}
        self._caller: Caller | None = None

    @property
    def caller(self) -> Caller:
        """Who is calling (authenticated on first use)."""
        if self._caller is None:
            r = self.request
            self._caller = authenticate(self.ctx.clients, r.method, r.url,
                                        r.headers.get("authorization"), r.body,
                                        r.headers.get("content-type"))
        return self._caller

    def authorize(self, **params: Any) -> None:
        """Require the entry's scope expression rendered with `params` (401 or 403)."""
        expression = render(self.entry.scopes, params)
        if expression is None:
            return
        caller = self.caller
        if caller.failed:
            raise ApiError("AuthenticationFailed", caller.message)
        missing = unsatisfied(list(caller.scopes), expression)
        if missing is None:
            return
        if caller.status == "auth-success":
            message = "\n".join([
                f"Client ID {caller.client_id} does not have sufficient scopes and is missing "
                "the following scopes:", "", "```", pretty(missing), "```", "",
                "This request requires the client to satisfy the following scope expression:",
                "", "```", pretty(expression), "```"])
        else:
            message = "\n".join([
                "This request requires Taskcluster credentials that satisfy the following "
                "scope expression:", "", "```", pretty(expression), "```"])
        raise ApiError("InsufficientScopes", message,
                       {"required": expression, "unsatisfied": missing})


Handler = Callable[[Call], "Reply | dict[str, Any]"]


class Api:
    """The services behind one pipeline."""

    def __init__(self, ctx: Context, handlers: dict[str, Handler]):
        self.ctx = ctx
        self.handlers = handlers

    def route(self, request: Request) -> tuple[Entry, dict[str, str]] | None:
        """The API method a request calls, with its URL parameters."""
        found = re.fullmatch(r"/api/([a-z-]+)/v1(/.*)?", request.path)
        if not found:
            return None
        return self.ctx.references.find(found.group(1), request.method, found.group(2) or "/")

    def handle(self, request: Request) -> tuple[str, Reply]:
        """Run the pipeline; the qualified method name (or `unknown`) and the reply."""
        routed = self.route(request)
        if routed is None:
            error = ApiError("ResourceNotFound",
                             f"No API method for {request.method} {request.path}")
            return "unknown", self.error_reply(error, "unknown", {}, None)
        entry, params = routed
        call = Call(self.ctx, entry, request, params, {})
        try:
            reply = self._run(call)
        except ApiError as error:
            return entry.qualified, self.error_reply(error, entry.name, params, call.body)
        except Exception as exc:  # a bug here must still answer like a service would
            error = ApiError("InternalServerError",
                             f"Internal Server Error: {type(exc).__name__}: {exc}")
            return entry.qualified, self.error_reply(error, entry.name, params, call.body)
        return entry.qualified, reply

    def _run(self, call: Call) -> Reply:
        entry, request = call.entry, call.request
        call.body = _parse_body(request)
        if entry.url_scoped:
            call.authorize(**call.params)
        _check_params(entry, call.params)
        call.query = _check_query(entry, request.query)
        schema_in = entry.schema_id("input")
        if schema_in:
            if not _is_json(request.headers.get("content-type")):
                raise ApiError("MalformedPayload",
                               "Payload must be JSON with content-type: application/json got "
                               f"content-type: {request.headers.get('content-type')}")
            self.ctx.schemas.apply_defaults(schema_in, call.body)
            problems = self.ctx.schemas.errors(schema_in, call.body)
            if problems:
                raise ApiError("InputValidationError", schema_message(
                    self.ctx.root_url, schema_in, problems))
        handler = self.handlers.get(entry.qualified)
        if handler is None:
            raise ApiError("ResourceNotFound",
                           f"dev-taskcluster does not implement {entry.qualified}")
        with self.ctx.state.lock:
            result = handler(call)
        reply = result if isinstance(result, Reply) else Reply(result)
        schema_out = entry.schema_id("output")
        if schema_out and reply.checked and reply.content_type == "application/json":
            problems = self.ctx.schemas.errors(schema_out, reply.body)
            if problems:
                raise ApiError("InternalServerError",
                               "Output schema validation error:\n" + "\n".join(problems))
        return reply

    def error_reply(self, error: ApiError, method: str, params: dict[str, str],
                    payload: Any = None) -> Reply:
        """The reply of an error raised in API method `method`."""
        time = dates.to_json(self.ctx.clock())
        headers = {"www-authenticate": "hawk"} if error.code == "AuthenticationFailed" else {}
        return Reply(error_body(error, method, params, payload, time), error.status, headers)


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def _parse_body(request: Request) -> Any:
    if len(request.body) > INPUT_LIMIT:
        raise ApiError("InputTooLarge", "Payload too large")
    if not request.body or not _is_json(request.headers.get("content-type")):
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise ApiError("MalformedPayload", f"Failed to parse JSON: {exc}") from None
    if not isinstance(body, dict | list):
        raise ApiError("MalformedPayload", "Failed to parse JSON: Must be an object or array")
    return body


def _check_params(entry: Entry, params: dict[str, str]) -> None:
    patterns = PARAM_PATTERNS.get(entry.service, {})
    errors = [f"URL parameter '{name}' given as '{value}' must match regular expression: "
              f"'/{patterns[name]}/'"
              for name, value in params.items()
              if name in patterns and not re.search(patterns[name], value)]
    if errors:
        raise ApiError("InvalidRequestArguments", "Invalid URL patterns:\n" + "\n".join(errors),
                       {"errors": errors})


def _check_query(entry: Entry, raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    errors: list[str] = []
    for key, values in parse_qs(raw, keep_blank_values=True).items():
        if key not in entry.query:
            if key != "bewit":
                errors.append(f"Query-string parameter: {key} is not supported!")
            continue
        if len(values) != 1:
            errors.append(f"Query-string parameter: {key} must be a string!")
            continue
        pattern = QUERY_PATTERNS.get(key)
        if pattern and not re.search(pattern, values[0]):
            errors.append(f'Query-string parameter: {key}="{values[0]}" does not match '
                          f"expression: /{pattern}/")
            continue
        query[key] = values[0]
    if errors:
        raise ApiError("InvalidRequestArguments", "\n".join(errors), {"errors": errors})
    return query


def schema_message(root_url: str, schema_id: str, problems: list[str]) -> str:
    """An InputValidationError message, in the services' wording."""
    return "\n".join(["Schema Validation Failed!", f"Rejecting Schema: {root_url}{schema_id}#",
                      "Errors:", *(f"  * {p}" for p in problems)])

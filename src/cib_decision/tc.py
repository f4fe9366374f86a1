"""The Taskcluster adapter: what cib calls on each service (typed client protocols), client
options, pooled connections, Taskcluster errors as ours, the one retry rule, listings page by
page, and artifact reading."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, overload

import taskcluster

from .errors import CibError, TransientError

# --- the clients --------------------------------------------------------------------------------
# What cib calls on each `taskcluster.<Service>` (whose methods take `*args, **kwargs`, so the
# real clients satisfy these); tests/test_tc_adapter.py checks each name against the client's
# own API reference, so a misspelt call cannot hide behind `Any`.


class Queue(Protocol):
    """The calls cib makes on `taskcluster.Queue`."""

    def task(self, taskId: str) -> dict[str, Any]: ...

    def status(self, taskId: str) -> dict[str, Any]: ...

    def createTask(self, taskId: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def listTaskGroup(self, taskGroupId: str, query: dict[str, Any] | None = None
                      ) -> dict[str, Any]: ...

    def getLatestArtifact(self, taskId: str, name: str) -> Any: ...


class Index(Protocol):
    """The calls cib makes on `taskcluster.Index`."""

    def findTask(self, indexPath: str) -> dict[str, Any]: ...

    def insertTask(self, namespace: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def listNamespaces(self, namespace: str, query: dict[str, Any] | None = None
                       ) -> dict[str, Any]: ...

    def listTasks(self, namespace: str, query: dict[str, Any] | None = None
                  ) -> dict[str, Any]: ...


class WorkerManager(Protocol):
    """The calls cib makes on `taskcluster.WorkerManager`."""

    def workerPool(self, workerPoolId: str) -> dict[str, Any]: ...

    def listWorkerPools(self, query: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def createWorkerPool(self, workerPoolId: str, payload: dict[str, Any]
                         ) -> dict[str, Any]: ...

    def updateWorkerPool(self, workerPoolId: str, payload: dict[str, Any]
                         ) -> dict[str, Any]: ...

    def deleteWorkerPool(self, workerPoolId: str) -> dict[str, Any]: ...


class Secrets(Protocol):
    """The calls cib makes on `taskcluster.Secrets`."""

    def get(self, name: str) -> dict[str, Any]: ...


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


# --- connections ------------------------------------------------------------------------------

log = logging.getLogger(__name__)
Client = TypeVar("Client")
T = TypeVar("T")
# The session the requests of the current call go through (set around a pooled client's call;
# context variables are per thread, so concurrent calls each see their own client's).
_SESSION: ContextVar[Any] = ContextVar("cib_taskcluster_session", default=None)


def reuse_connections(client: Client, connections: int = 50) -> Client:
    """Make `client` (a `taskcluster.<Service>`) send its requests through one
    `requests.Session` whose pool keeps up to `connections` connections open, and return it.

    The taskcluster client (113) sends each request with `requests.request`: a new session and
    a new TCP connection per call (about half of the CPU a created task cost). Its retries,
    signing and errors stay its own; only the sending changes. Calling it again on the same
    client changes nothing."""
    if getattr(client, "_cib_pooled", False):
        return client
    import requests

    quiet_hawk_debug()
    _send_through_sessions()
    session = requests.Session()
    # requests reads the environment (proxies, CA bundle, .netrc) again for every request,
    # walking all of os.environ: a sixth of a request's CPU. Read once, for this root URL.
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(client.options["rootUrl"])
    session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or True)
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    send = client._makeHttpRequest  # type: ignore[attr-defined]

    def through_session(method: str, route: str, payload: Any) -> Any:
        token = _SESSION.set(session)
        try:
            return send(method, route, payload)
        finally:
            _SESSION.reset(token)

    client._makeHttpRequest = through_session  # type: ignore[attr-defined]
    client.session = session  # type: ignore[attr-defined]
    client._cib_pooled = True  # type: ignore[attr-defined]
    return client


class _PformatWhenLogged:
    """Stands in for the `pprint` module inside mohawk, which formats its debug messages
    whether or not they are logged (`log.debug("...".format(pprint.pformat(...)))`): the whole
    request body, pretty-printed, for every signature made or checked. Formats only when
    mohawk's debug messages are logged."""

    @staticmethod
    def pformat(value: Any, *args: Any, **kwargs: Any) -> str:
        """`pprint.pformat`, when mohawk logs debug messages."""
        if logging.getLogger("mohawk").isEnabledFor(logging.DEBUG):
            import pprint

            return pprint.pformat(value, *args, **kwargs)
        return "(not formatted: mohawk's debug messages are not logged)"


def quiet_hawk_debug() -> None:
    """Stop mohawk (Hawk request signing, client and server side) from building debug strings
    that are not logged; about a third of the CPU a signature costs for a task's body."""
    import mohawk.base
    import mohawk.util

    for module in (mohawk.base, mohawk.util):
        module.pprint = _PformatWhenLogged  # type: ignore[attr-defined]


def _send_through_sessions() -> None:
    """Have the taskcluster client's one sending function (`utils.makeSingleHttpRequest`) use
    the session of the pooled client calling it; calls of other clients are unchanged."""
    from taskcluster import utils

    if getattr(utils.makeSingleHttpRequest, "cib_sessions", False):
        return
    original = utils.makeSingleHttpRequest

    def make_single_http_request(method: str, url: str, payload: Any, headers: Any,
                                 session: Any = None) -> Any:
        session = session or _SESSION.get()
        if session is None:
            return original(method, url, payload, headers, session)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", method.upper(), url)
        # what the original sends, without building its debug strings for every request
        return session.request(method.upper(), url, data=payload, headers=headers,
                               allow_redirects=False)

    make_single_http_request.cib_sessions = True  # type: ignore[attr-defined]
    utils.makeSingleHttpRequest = make_single_http_request


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


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a Taskcluster error, None when it has none (a lost connection)."""
    return getattr(exc, "status_code", None)


def transient(exc: BaseException) -> bool:
    """Whether a later attempt may succeed: a lost connection or a 5xx answer."""
    from taskcluster.exceptions import TaskclusterConnectionError, TaskclusterRestFailure

    return isinstance(exc, TaskclusterConnectionError) or (
        isinstance(exc, TaskclusterRestFailure) and (status_of(exc) or 0) >= 500)


def failure(service: str, doing: str, exc: BaseException,
            refused: type[CibError] = CibError) -> CibError:
    """One Taskcluster error as our error, the same way for every service: a lost connection or
    a 5xx is transient (exit 75, retried by the worker); a 403 names the scopes the caller
    lacks; any other refusal is `refused` with the service's status and message."""
    from taskcluster.exceptions import TaskclusterConnectionError

    status = status_of(exc)
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


@overload
def call(service: str, doing: str, function: Callable[[], T], *,
         refused: type[CibError] = CibError) -> T: ...


@overload
def call(service: str, doing: str, function: Callable[[], T], *, allow: tuple[int, ...],
         refused: type[CibError] = CibError) -> T | int: ...


def call(service: str, doing: str, function: Callable[[], T], *, allow: tuple[int, ...] = (),
         refused: type[CibError] = CibError) -> T | int:
    """`function()` (one call of `service`), its Taskcluster error as ours (`failure`); an
    error whose status is in `allow` (404 for "none", 409 for "exists") is returned as that
    number instead."""
    from taskcluster.exceptions import TaskclusterFailure

    try:
        return function()
    except TaskclusterFailure as exc:
        if status_of(exc) in allow:
            return status_of(exc)  # type: ignore[return-value]
        raise failure(service, doing, exc, refused) from None


# --- retries ----------------------------------------------------------------------------------


def retrying(function: Callable[[], T], *, attempts: int = 5,
             may_pass: Callable[[BaseException], bool] = transient, backoff: float = 0.1,
             sleep: Callable[[float], None] = time.sleep,
             retried: Callable[[BaseException, int], None] | None = None) -> T:
    """`function()`, called again while it raises an error `may_pass` accepts (by default a
    Taskcluster lost connection or 5xx), up to `attempts` calls in all; the last error is
    raised. Waits `backoff * 2**attempt` seconds (at most 10, ±25 % so that many callers do
    not retry in step) and tells `retried(error, attempt)` before each new call. Used where a
    client's own retries are off (`maxRetries: 0`) or absent (artifact downloads)."""
    for attempt in range(attempts):
        try:
            return function()
        except Exception as exc:
            if attempt == attempts - 1 or not may_pass(exc):
                raise
            if retried is not None:
                retried(exc, attempt)
        sleep(min(10.0, backoff * 2 ** attempt) * random.uniform(0.75, 1.25))
    raise AssertionError("unreachable: the last attempt returns or raises")


# --- listings ---------------------------------------------------------------------------------


def pages(call: Callable[[dict[str, Any]], dict[str, Any]], field: str, *,
          query: dict[str, str] | None = None,
          fail: Callable[[Exception, int], BaseException] | None = None) -> Iterator[Any]:
    """Every item of `field` in a Taskcluster listing, page after page, following
    `continuationToken` to the last page. `call(query)` asks for one page (`query` plus the
    token); with `fail`, a Taskcluster error of page N (from 1) raises `fail(error, N)`
    instead, so a listing is whole or it raises."""
    from taskcluster.exceptions import TaskclusterFailure

    token, number = None, 1
    while True:
        asked = {**(query or {}), **({"continuationToken": token} if token else {})}
        try:
            page = call(asked)
        except TaskclusterFailure as exc:
            if fail is None:
                raise
            raise fail(exc, number) from None
        yield from page.get(field) or ()
        token = page.get("continuationToken")
        if not token:
            return
        number += 1


# --- artifacts --------------------------------------------------------------------------------


class _Unavailable(Exception):
    """A download answered with a 5xx status (retried)."""


def read_artifact(queue: Queue, task_id: str, name: str, *,
                  refused: type[CibError] = CibError) -> Any | None:
    """The JSON content of artifact `name` of the latest run of `task_id`, or None when the
    task has no such artifact (404, or an `error` artifact). Follows the queue's answer when
    it is a URL to fetch (`{storageType, url}`: S3 and object artifacts), retrying lost
    connections and 5xx answers. The queue's refusals are `failure`s (`refused` for those that
    are not transient); an artifact that is not JSON is `refused`."""
    what = f"artifact {name} of task {task_id}"
    result = call("queue", f"give {what}", lambda: queue.getLatestArtifact(task_id, name),
                  allow=(404,), refused=refused)
    if result == 404:
        return None
    if isinstance(result, dict) and set(result) == {"storageType", "url"}:
        if result["storageType"] == "error":
            return None
        return _fetch_json(result["url"], what, refused)
    if isinstance(result, dict) and set(result) == {"response"}:
        raise refused(f"{what} is not JSON")
    return result


def _fetch_json(url: str, what: str, refused: type[CibError]) -> Any:
    import requests

    def get() -> requests.Response:
        response = requests.get(url, timeout=60)
        if response.status_code >= 500:
            raise _Unavailable(f"status {response.status_code}")
        return response

    try:
        response = retrying(get, may_pass=lambda exc: isinstance(
            exc, (_Unavailable, requests.RequestException)))
    except (_Unavailable, requests.RequestException) as exc:
        raise TransientError(f"cannot download {what}: {exc}") from None
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise refused(f"cannot download {what}: status {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise refused(f"{what} is not JSON") from None

"""`DevTaskcluster`: the local Taskcluster as one object to start, stop, give credentials and
drive from Python (tests, scripts, `cib dev-taskcluster`)."""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import CibError
from ..scopes import role_scopes
from ..tcschemas import find_schema_dir
from . import artifacts as artifacts_service
from . import authapi, dates, devhooks, runs
from . import claims as claims_service
from . import credentials as credentials_service
from . import index as index_service
from . import objects as objects_service
from . import queue as queue_service
from . import secrets as secrets_service
from . import workermanager as wm_service
from .api import TASK_QUEUE_ID, Api, Context, Timeouts
from .auth import Client, Clients, repo_role_expander
from .faults import Faults, FaultSettings, Stats
from .reference import References
from .schemas import Schemas
from .server import DevServer
from .serving import ServerThread
from .state import Artifact, State

DEFAULT_PROVIDERS = {"azure": "azure", "aws": "aws", "google": "google"}
PROVIDER_TYPES = ("azure", "aws", "google", "static", "null", "testing")
ROOT_CLIENT_ID = "static/taskcluster/root"
INDEX_CLIENT_ID = "static/taskcluster/index"
QUEUE_CLIENT_ID = "static/taskcluster/queue"
ROLE_CLIENT_PREFIX = "dev/"
HANDLERS = {**authapi.HANDLERS, **queue_service.HANDLERS, **claims_service.HANDLERS,
            **artifacts_service.HANDLERS, **index_service.HANDLERS, **wm_service.HANDLERS,
            **secrets_service.HANDLERS, **objects_service.HANDLERS}
DEFAULT_PROJECT = "images"
WORKER_CLIENT_PREFIX = "worker/"
EXPIRY_CHECK_SECONDS = 0.5
_WORKER_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,38}$")


def find_roles_file(start: Path | None = None) -> Path | None:
    """`taskcluster/roles.yml` in `start` (default: the working directory) or a parent, else
    the one that ships with cib-decision (taskgraph/root.py: a repository without its own)."""
    from ..taskgraph.root import ROLES, packaged_folder

    base = start or Path.cwd()
    for directory in (base, *base.parents):
        candidate = directory / "taskcluster" / "roles.yml"
        if candidate.is_file():
            return candidate
    return packaged_folder() / ROLES


def load_roles(path: Path) -> dict[str, list[str]]:
    """A roles file: role name (may end in `*`) → list of scopes (may contain `{project}`)."""
    try:
        roles = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CibError(f"cannot read roles file {path}: {exc}") from None
    if not isinstance(roles, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
            for k, v in roles.items()):
        raise CibError(f"{path}: expected a mapping of role name to a list of scopes")
    return roles


def references_path(schemas_dir: Path) -> Path:
    """`generated/references.json` beside a `.../taskcluster/schemas` directory."""
    return Path(schemas_dir).parent / "generated" / "references.json"


class DevTaskcluster:
    """A stateful local Taskcluster (queue, index, worker-manager, secrets, object) on
    127.0.0.1 that the official `taskcluster` client talks to unchanged.

    Clients: a root client (scope `*`), per repository role of the roles file a client
    holding that role's scopes (created on first use for concrete roles such as
    `cron:nightly`), and per worker a client holding what worker-manager gives a worker
    (`worker_credentials`). Every caller also holds the anonymous scopes of a public
    deployment.

    The queue's timing: `claim_timeout` (seconds a claim lasts, 1200 as deployed),
    `claim_work_timeout` (how long claimWork waits for work, 20 in the queue) and
    `deadline_delay` (how long after its deadline an unresolved task is resolved
    `deadline-exceeded`, 60 in the queue). A background thread expires claims and deadlines
    every half second while the server runs.
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1",
                 schemas_dir: Path | None = None, roles: dict[str, list[str]] | None = None,
                 roles_file: Path | None = None, project: str = DEFAULT_PROJECT,
                 providers: dict[str, str] | None = None, faults: FaultSettings | None = None,
                 access_token: str | None = None, seed: int | None = None,
                 max_task_deadline_days: int = 5, log: Callable[[str], None] | None = None,
                 claim_timeout: float = 1200.0, claim_work_timeout: float = 20.0,
                 deadline_delay: float = 60.0):
        directory = schemas_dir or find_schema_dir()
        if directory is None or not Path(directory).is_dir():
            raise CibError(
                f"no Taskcluster schemas at {directory}" if directory else
                "no Taskcluster schemas found: give a schema directory (the "
                "taskcluster-schemas/taskcluster/schemas folder of ../shared/reference) or set "
                "CIB_TASKCLUSTER_SCHEMAS")
        self.providers = {**DEFAULT_PROVIDERS, **(providers or {})}
        unknown = {t for t in self.providers.values() if t not in PROVIDER_TYPES}
        if unknown:
            raise CibError(f"unknown provider type(s) {', '.join(sorted(unknown))}; known: "
                           f"{', '.join(PROVIDER_TYPES)}")
        references = References.load(references_path(Path(directory)))
        self.schemas = Schemas.load(Path(directory), references.schemas)
        if roles is None:
            found = roles_file or find_roles_file()
            roles = load_roles(found) if found else {}
        self.roles, self.project = roles, project
        self._access_token = access_token
        self._lock = threading.Lock()
        self.clients = Clients(expand=repo_role_expander(roles))
        self.root = self.clients.add(Client(ROOT_CLIENT_ID, self._token(), ("*",)))
        index_client = self.clients.add(
            Client(INDEX_CLIENT_ID, self._token(), ("queue:get-artifact:*",)))
        queue_client = self.clients.add(Client(QUEUE_CLIENT_ID, self._token(), ("*",)))
        self.faults = Faults(faults, seed=seed)
        self.counters = Stats()
        self._host, self._port = host, port
        self._ctx_args = dict(references=references, index_client=index_client,
                              queue_client=queue_client,
                              max_task_deadline_days=max_task_deadline_days)
        self._log = log
        self._timeouts = Timeouts(claim_timeout, claim_work_timeout, deadline_delay)
        self._serving: ServerThread | None = None
        self._expiry: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ctx: Context | None = None

    def _token(self) -> str:
        return self._access_token or secrets.token_urlsafe(33)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DevTaskcluster:
        """Listen (on a free port unless one was given) and serve in a background thread."""
        if self._serving is not None:
            return self
        server = DevServer((self._host, self._port), self.faults, self.counters, self._log)
        self.ctx = Context(state=State(), schemas=self.schemas, clients=self.clients,
                           stats=self.counters, root_url=f"http://{self._host}:{server.port}",
                           providers=self.providers, timeouts=copy.copy(self._timeouts),
                           **self._ctx_args)
        server.attach(Api(self.ctx, HANDLERS), devhooks.DevRoutes(self.ctx, self.faults,
                                                                  self.counters))
        self._serving = ServerThread(server, name="dev-taskcluster", poll_interval=0.1).start()
        self._stopping.clear()
        self._expiry = threading.Thread(target=self._expire_forever, name="dev-taskcluster-expiry",
                                        daemon=True)
        self._expiry.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._serving is None:
            return
        self._stopping.set()
        self._serving.stop()
        if self._expiry is not None:
            self._expiry.join()
        self._serving = self._expiry = None

    def _expire_forever(self) -> None:
        while not self._stopping.wait(EXPIRY_CHECK_SECONDS):
            self.resolve_expired()

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` (or KeyboardInterrupt)."""
        self.start()
        serving = self._serving
        assert serving is not None
        while serving.is_alive():
            serving.join(0.5)

    def __enter__(self) -> DevTaskcluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _context(self) -> Context:
        if self.ctx is None:
            raise RuntimeError("DevTaskcluster is not started")
        return self.ctx

    # -- credentials -------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return self._context().root_url

    @property
    def root_credentials(self) -> dict[str, str]:
        """The root client's `{"clientId", "accessToken"}` (scope `*`)."""
        return self.root.credentials

    def role_client(self, role: str) -> Client:
        """The client of a repository role (`branch:main`, `pull-request`, `cron:nightly`),
        holding the scopes the roles file gives that role."""
        client_id = ROLE_CLIENT_PREFIX + role
        with self._lock:
            client = self.clients.get(client_id)
            if client is None:
                if not any(n == role or (n.endswith("*") and role.startswith(n[:-1]))
                           for n in self.roles):
                    raise KeyError(f"no role {role!r} in the roles file (roles: "
                                   f"{', '.join(self.roles) or 'none'})")
                scopes = role_scopes(self.roles, role, project=self.project)
                client = self.clients.add(Client(client_id, self._token(), tuple(scopes)))
        return client

    def credentials(self, role: str) -> dict[str, str]:
        """`{"clientId", "accessToken"}` of the client of a repository role."""
        return self.role_client(role).credentials

    def options(self, role: str | None = None, max_retries: int = 0) -> dict[str, Any]:
        """Options for the taskcluster client: rootUrl, the role's credentials (root's when
        `role` is None) and maxRetries."""
        credentials = self.root_credentials if role is None else self.credentials(role)
        return {"rootUrl": self.root_url, "credentials": credentials,
                "maxRetries": max_retries}

    def environ(self, role: str | None = None) -> dict[str, str]:
        """`TASKCLUSTER_ROOT_URL`, `_CLIENT_ID` and `_ACCESS_TOKEN` for the role's client (root
        when None), as `taskcluster.optionsFromEnvironment` and taskgraph read them."""
        credentials = self.root_credentials if role is None else self.credentials(role)
        return {"TASKCLUSTER_ROOT_URL": self.root_url,
                "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
                "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"]}

    # -- dev hooks ---------------------------------------------------------------------------

    def set_faults(self, error_rate: float = 0.0, latency_ms: int = 0,
                   drop_rate: float = 0.0, seed: int | None = None) -> None:
        """Answer `error_rate` of API requests with 500/502/503, delay each by `latency_ms`,
        and drop `drop_rate` of connections (half of those after applying the request).
        `seed` makes the sequence of faults repeatable."""
        self.faults.set(FaultSettings(error_rate, latency_ms, drop_rate), seed=seed)

    def script_faults(self, *kinds: str) -> None:
        """Exact faults for the next API requests, in order: `"500"`, `"502"`, `"503"`,
        `"drop-before"`, `"drop-after"`, or `""` for a request left alone."""
        self.faults.script(list(kinds))

    def resolve_task(self, task_id: str, state: str = "completed",
                     artifacts: dict[str, object] | None = None,
                     reason: str | None = None) -> dict[str, Any]:
        """Resolve a task as a worker would (see `devhooks.resolve_task`); its status."""
        try:
            return devhooks.resolve_task(self._context(), task_id, state, artifacts, reason)
        except devhooks.HookError as exc:
            raise (KeyError if exc.status == 404 else ValueError)(str(exc)) from None

    def task_credentials(self, task_id: str) -> dict[str, Any]:
        """Claim the task as a worker would and return `{"status", "runId", "takenUntil",
        "credentials"}`: temporary credentials holding the task's scopes (see
        `devhooks.task_credentials`)."""
        try:
            return devhooks.task_credentials(self._context(), task_id)
        except devhooks.HookError as exc:
            raise (KeyError if exc.status == 404 else ValueError)(str(exc)) from None

    def worker_credentials(self, task_queue_id: str, worker_group: str,
                           worker_id: str) -> dict[str, str]:
        """`{"clientId", "accessToken"}` of the client `worker/<workerGroup>/<workerId>`
        (created on first use), holding what worker-manager's credentials give a worker of
        pool `task_queue_id`: `queue:claim-work:<taskQueueId>`,
        `queue:worker-id:<workerGroup>/<workerId>`, `assume:worker-type:<taskQueueId>`,
        `assume:worker-id:<workerGroup>/<workerId>` and the rest of
        `credentials.worker_scopes`. Asking again for another queue moves the worker there
        (same access token, that queue's scopes instead)."""
        if not re.fullmatch(TASK_QUEUE_ID, task_queue_id):
            raise ValueError(f"not a taskQueueId: {task_queue_id!r}")
        if not (_WORKER_NAME.fullmatch(worker_group) and _WORKER_NAME.fullmatch(worker_id)):
            raise ValueError(f"workerGroup and workerId are 1-38 of [a-zA-Z0-9-_], not "
                             f"{worker_group!r}, {worker_id!r}")
        client_id = f"{WORKER_CLIENT_PREFIX}{worker_group}/{worker_id}"
        scopes = credentials_service.worker_scopes(task_queue_id, worker_group, worker_id)
        with self._lock:
            existing = self.clients.get(client_id)
            client = self.clients.add(Client(
                client_id, existing.access_token if existing else self._token(), tuple(scopes)))
        return client.credentials

    def set_timeouts(self, claim_timeout: float | None = None,
                     claim_work_timeout: float | None = None,
                     deadline_delay: float | None = None) -> None:
        """Change the queue's timing while running (those given; `reset` restores the
        constructor's): seconds a claim lasts, claimWork's long poll, and the delay after a
        deadline before an unresolved task is resolved `deadline-exceeded`."""
        timeouts = self._context().timeouts
        for field, value in (("claim", claim_timeout), ("claim_work", claim_work_timeout),
                             ("deadline_delay", deadline_delay)):
            if value is not None:
                setattr(timeouts, field, float(value))

    def resolve_expired(self) -> dict[str, list[str]]:
        """Do now what the queue's claim and deadline resolvers do (the background thread does
        it every half second): a running run whose takenUntil has passed becomes
        `exception`/`claim-expired` (a new `retry` run while retries are left), an unresolved
        task `deadline_delay` past its deadline becomes `exception`/`deadline-exceeded`.
        Returns `{"claimExpired": [taskId...], "deadlineExceeded": [taskId...]}`."""
        ctx = self._context()
        with ctx.state.lock:
            return runs.expire(ctx)

    def artifacts(self, task_id: str, run_id: int | None = None) -> dict[str, dict[str, Any]]:
        """The artifacts of a run (default: the latest), by name: their metadata as
        `listArtifacts` gives it, `present`, the storage type's details (`url`, `artifact`,
        `reason`, `message`) and `content`, the data uploaded (bytes; None when there is
        none)."""
        ctx = self._context()
        with ctx.state.lock:
            record = ctx.state.tasks.get(task_id)
            if record is None:
                raise KeyError(f"no task {task_id}")
            run_id = len(record.runs) - 1 if run_id is None else run_id
            return {name: self._artifact(ctx, task_id, run_id, a)
                    for (t, r, name), a in sorted(ctx.state.artifacts.items())
                    if (t, r) == (task_id, run_id)}

    @staticmethod
    def _artifact(ctx: Context, task_id: str, run_id: int,
                  artifact: Artifact) -> dict[str, Any]:
        content = artifact.content
        if artifact.storage_type == "object":
            stored = ctx.state.objects.get(artifacts_service.object_name(task_id, run_id,
                                                                         artifact.name))
            content = stored.content if stored is not None else None
        details = {k: v for k, v in artifact.details.items()
                   if k in ("url", "artifact", "reason", "message")}
        return {**artifact.serialize(), **details, "present": artifact.present,
                "content": content}

    def wait_for_task_group(self, task_group_id: str,
                            timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every task of the group is resolved or can no longer run (pending or
        unscheduled past its deadline, or waiting for a dependency that resolved without
        satisfying it); their statuses by taskId. TimeoutError names the tasks still able to
        run after `timeout` seconds."""
        ctx = self._context()
        give_up = time.monotonic() + timeout
        with ctx.state.lock:
            while True:
                members = [r for r in ctx.state.tasks.values()
                           if r.definition["taskGroupId"] == task_group_id]
                running = sorted(r.task_id for r in members if runs.can_still_run(ctx, r))
                remaining = give_up - time.monotonic()
                if not running:
                    return {r.task_id: r.status() for r in members}
                if remaining <= 0:
                    raise TimeoutError(f"task group {task_group_id}: after {timeout} s, tasks "
                                       f"{', '.join(running)} can still run")
                ctx.state.changed.wait(min(remaining, EXPIRY_CHECK_SECONDS))

    def set_secret(self, name: str, secret: dict[str, Any],
                   expires: datetime | None = None) -> None:
        """Store secret `name` as `secrets.set` would (replacing one of that name); it expires
        at `expires` (default: in a year). Reading it needs `secrets:get:<name>`."""
        if not isinstance(secret, dict):
            raise TypeError(f"a secret is a JSON object, not {type(secret).__name__}")
        ctx = self._context()
        with ctx.state.lock:
            secrets_service.store(ctx, name, secret,
                                  expires or dates.plus_one_year(ctx.clock()))

    def secrets(self) -> dict[str, dict[str, Any]]:
        """Every stored secret, expired ones too, as `secrets.get` answers it, by name."""
        ctx = self._context()
        with ctx.state.lock:
            return {n: s.serialize() for n, s in sorted(ctx.state.secrets.items())}

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task's definition as stored, by taskId."""
        ctx = self._context()
        with ctx.state.lock:
            return {t: copy.deepcopy(r.definition) for t, r in ctx.state.tasks.items()}

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every task's status, by taskId."""
        ctx = self._context()
        with ctx.state.lock:
            return {t: r.status() for t, r in ctx.state.tasks.items()}

    def notifications(self) -> list[dict[str, Any]]:
        """The messages the notify service would have sent, in order: `{kind, target,
        subject, taskId, state}` for each matching `notify.<kind>.<target>.on-<event>` route of
        a resolved task (devtc/notify.py)."""
        ctx = self._context()
        with ctx.state.lock:
            return copy.deepcopy(ctx.state.notifications)

    def worker_pools(self) -> dict[str, dict[str, Any]]:
        """Every worker pool as `workerPool` returns it, by workerPoolId."""
        ctx = self._context()
        with ctx.state.lock:
            return {i: p.serialize() for i, p in ctx.state.pools.items()}

    def stats(self) -> dict[str, Any]:
        """The counters: `{"requests": {method: n}, "faults": {kind: n}, "responses":
        {status: n}, "tasksCreated": n, "createdTaskIds": [...]}`."""
        return self.counters.snapshot()

    def reset(self) -> None:
        """Forget all tasks, index entries, pools, artifacts, objects and secrets; zero the
        counters and faults; restore the timing given to the constructor (clients stay)."""
        ctx = self._context()
        ctx.state.reset()
        ctx.timeouts = copy.copy(self._timeouts)
        self.counters.reset()
        self.faults.set(FaultSettings())

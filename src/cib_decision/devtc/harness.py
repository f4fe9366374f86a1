"""`DevTaskcluster`: the local Taskcluster as one object to start, stop, give credentials and
drive from Python (tests, scripts, `cib dev-taskcluster`)."""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import CibError
from ..scopes import role_scopes
from ..tcschemas import find_schema_dir
from . import dates, devhooks
from . import index as index_service
from . import queue as queue_service
from . import secrets as secrets_service
from . import workermanager as wm_service
from .api import Api, Context
from .auth import Client, Clients, repo_role_expander
from .faults import Faults, FaultSettings, Stats
from .reference import References
from .schemas import Schemas
from .server import DevServer
from .state import State

DEFAULT_PROVIDERS = {"azure": "azure", "aws": "aws", "google": "google"}
PROVIDER_TYPES = ("azure", "aws", "google", "static", "null", "testing")
ROOT_CLIENT_ID = "static/taskcluster/root"
INDEX_CLIENT_ID = "static/taskcluster/index"
QUEUE_CLIENT_ID = "static/taskcluster/queue"
ROLE_CLIENT_PREFIX = "dev/"
HANDLERS = {**queue_service.HANDLERS, **index_service.HANDLERS, **wm_service.HANDLERS,
            **secrets_service.HANDLERS}
DEFAULT_PROJECT = "images"


def find_roles_file(start: Path | None = None) -> Path | None:
    """`taskcluster/roles.yml` in `start` (default: the working directory) or a parent, else
    beside this package's checkout."""
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        for directory in (base, *base.parents):
            candidate = directory / "taskcluster" / "roles.yml"
            if candidate.is_file():
                return candidate
    return None


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
    """A stateful local Taskcluster (queue, index, worker-manager, secrets) on 127.0.0.1 that
    the official `taskcluster` client talks to unchanged.

    Clients: a root client (scope `*`) and, per repository role of the roles file, a client
    holding that role's scopes (created on first use for concrete roles such as
    `cron:nightly`). Every caller also holds the anonymous scopes of a public deployment.
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1",
                 schemas_dir: Path | None = None, roles: dict[str, list[str]] | None = None,
                 roles_file: Path | None = None, project: str = DEFAULT_PROJECT,
                 providers: dict[str, str] | None = None, faults: FaultSettings | None = None,
                 access_token: str | None = None, seed: int | None = None,
                 max_task_deadline_days: int = 5, log: Callable[[str], None] | None = None):
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
        self._server: DevServer | None = None
        self._thread: threading.Thread | None = None
        self.ctx: Context | None = None

    def _token(self) -> str:
        return self._access_token or secrets.token_urlsafe(33)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DevTaskcluster:
        """Listen (on a free port unless one was given) and serve in a background thread."""
        if self._server is not None:
            return self
        server = DevServer((self._host, self._port), self.faults, self.counters, self._log)
        self.ctx = Context(state=State(), schemas=self.schemas, clients=self.clients,
                           stats=self.counters, root_url=f"http://{self._host}:{server.port}",
                           providers=self.providers, **self._ctx_args)
        server.attach(Api(self.ctx, HANDLERS), devhooks.DevRoutes(self.ctx, self.faults,
                                                                  self.counters))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="dev-taskcluster",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` (or KeyboardInterrupt)."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

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
        """Forget all tasks, index entries, pools, artifacts and secrets; zero the counters and
        faults (clients stay)."""
        self._context().state.reset()
        self.counters.reset()
        self.faults.set(FaultSettings())

"""Temporary credentials the queue issues with its own credentials: a task run's
(`services/queue/src/task-creds.js`), an object artifact's upload and download credentials
(`artifacts.js`), and the scopes worker-manager gives a worker (`createCredentials` in
`services/worker-manager/src/util.js`)."""

from __future__ import annotations

from datetime import datetime

import taskcluster

from .api import Context


def issue(ctx: Context, name: str, scopes: list[str], expiry: datetime) -> dict[str, str]:
    """Named temporary credentials `{"clientId", "accessToken", "certificate"}` from now until
    `expiry`, signed by the queue's client."""
    issuer = ctx.queue_client
    credentials = taskcluster.createTemporaryCredentials(
        issuer.client_id, issuer.access_token, ctx.clock(), expiry, scopes, name=name)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in credentials.items()}


def _js_seconds(value: datetime) -> str:
    """`date.getTime() / 1000` as JavaScript prints it (`1700000000.123`, `1700000000`)."""
    seconds = round(value.timestamp() * 1000) / 1000
    return str(int(seconds)) if seconds.is_integer() else str(seconds)


def task_run(ctx: Context, task_id: str, run_id: int, worker_group: str, worker_id: str,
             taken_until: datetime, scopes: list[str]) -> dict[str, str]:
    """What `claimWork` and `reclaimTask` give a worker for a run: credentials named
    `task-client/<taskId>/<runId>/on/<group>/<worker>/until/<seconds>`, valid until the claim
    expires, holding the task's scopes plus reclaim, resolve and create-artifact of the run."""
    name = "/".join(["task-client", task_id, str(run_id), "on", worker_group, worker_id,
                     "until", _js_seconds(taken_until)])
    return issue(ctx, name, [f"queue:reclaim-task:{task_id}/{run_id}",
                             f"queue:resolve-task:{task_id}/{run_id}",
                             f"queue:create-artifact:{task_id}/{run_id}", *scopes],
                 taken_until)


def worker_scopes(worker_pool_id: str, worker_group: str, worker_id: str) -> list[str]:
    """The scopes worker-manager's credentials give a worker of a pool (its task queue)."""
    worker = f"{worker_group}/{worker_id}"
    return [f"assume:worker-type:{worker_pool_id}", f"assume:worker-pool:{worker_pool_id}",
            f"assume:worker-id:{worker}", f"queue:worker-id:{worker}",
            f"secrets:get:worker-type:{worker_pool_id}",
            f"secrets:get:worker-pool:{worker_pool_id}", f"queue:claim-work:{worker_pool_id}",
            f"worker-manager:remove-worker:{worker_pool_id}/{worker}",
            f"worker-manager:reregister-worker:{worker_pool_id}/{worker}",
            f"worker-manager:should-worker-terminate:{worker_pool_id}/{worker}"]


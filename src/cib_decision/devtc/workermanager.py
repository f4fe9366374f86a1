"""The worker-manager service: worker pools and their launch configs
(`services/worker-manager/src/api.js`, `db/versions/0105*`)."""

from __future__ import annotations

import copy
import hashlib
import json
from decimal import Decimal
from typing import Any

from . import dates
from .api import Call, Context, Handler, schema_message
from .apierror import ApiError
from .pagination import paginate, with_token
from .state import LaunchConfig, WorkerPool

NULL_PROVIDER = "null-provider"


def jsonb_text(value: Any) -> str:
    """PostgreSQL's text of a `jsonb` value: object keys shortest first, then bytewise;
    `", "` and `": "` separators. (Numbers are written as Python parsed them.)"""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{jsonb_text(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, float):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    return json.dumps(value, ensure_ascii=False)


def launch_config_id(worker_pool_id: str, config: Any) -> str:
    """`get_or_create_launch_config_id`: `workerManager.launchConfigId` when given, else
    `'lc-' || left(md5(workerPoolId || config-without-workerManager), 20)`."""
    if isinstance(config, dict):
        given = (config.get("workerManager") or {}).get("launchConfigId")
        if given is not None:
            return str(given)
        config = {k: v for k, v in config.items() if k != "workerManager"}
    digest = hashlib.md5((worker_pool_id + jsonb_text(config)).encode(), usedforsecurity=False)
    return "lc-" + digest.hexdigest()[:20]


def _without_manager(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: v for k, v in config.items() if k != "workerManager"}
    return config


def upsert_launch_configs(ctx: Context, pool: WorkerPool, config: dict[str, Any]) -> None:
    """`upsert_worker_pool_launch_configs`: keep or un-archive launch configs whose id is
    listed, create new ones, archive the rest. Checks everything before changing anything
    (409 when an id is reused with other content)."""
    now = ctx.clock()
    table = {i: copy.copy(lc) for i, lc in pool.launch_configs.items()}
    order: list[str] = []
    for item in config.get("launchConfigs") or []:
        lc_id = launch_config_id(pool.worker_pool_id, item)
        existing = table.get(lc_id)
        if existing is not None:
            if _without_manager(existing.configuration) != _without_manager(item):
                raise ApiError("RequestConflict", f"Launch config with ID `{lc_id}` already "
                                                  "exists with different configuration")
            if existing.is_archived:
                existing.is_archived = False
                existing.last_modified = now
        else:
            table[lc_id] = LaunchConfig(lc_id, copy.deepcopy(item), False, now, now)
        order.append(lc_id)
    order = list(dict.fromkeys(order))
    for lc_id, lc in table.items():
        if lc_id not in order and not lc.is_archived:
            lc.is_archived = True
    pool.launch_configs, pool.order = table, order


def _provider(ctx: Context, provider_id: str, config: dict[str, Any]) -> None:
    """Validation steps 2 and 3: the provider is configured; the config fits its type."""
    provider_type = ctx.providers.get(provider_id)
    if provider_type is None:
        raise ApiError("InputError", "Invalid Provider",
                       {"providerId": provider_id, "validProviderIds": sorted(ctx.providers)})
    schema = f"/schemas/worker-manager/v1/config-{provider_type}.json"
    ctx.schemas.apply_defaults(schema, config)
    problems = ctx.schemas.errors(schema, config)
    if problems:
        raise ApiError("InputValidationError", schema_message(ctx.root_url, schema, problems))


def _pool(ctx: Context, pool_id: str) -> WorkerPool:
    pool = ctx.state.pools.get(pool_id)
    if pool is None:
        raise ApiError("ResourceNotFound", "Worker pool does not exist")
    return pool


def create_worker_pool(call: Call) -> dict[str, Any]:
    """`createWorkerPool`: 409 when the pool exists, unless every field is equal to it."""
    ctx, pool_id, body = call.ctx, call.params["workerPoolId"], call.body
    call.authorize(workerPoolId=pool_id, providerId=body["providerId"])
    _provider(ctx, body["providerId"], body["config"])
    existing = ctx.state.pools.get(pool_id)
    if existing is not None:
        served = existing.serialize()
        if any(served[k] != body[k] for k in ("providerId", "description", "config", "owner",
                                              "emailOnError")):
            raise ApiError("RequestConflict", "Worker pool already exists")
        return served
    now = ctx.clock()
    pool = WorkerPool(pool_id, body["providerId"], body["description"],
                      _stored(body["config"]), body["owner"], body["emailOnError"], now, now)
    upsert_launch_configs(ctx, pool, body["config"])
    ctx.state.pools[pool_id] = pool
    return pool.serialize()


def _stored(config: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in config.items() if k != "launchConfigs"})


def _update(ctx: Context, pool: WorkerPool, provider_id: str, description: str,
            config: dict[str, Any], owner: str, email_on_error: bool) -> None:
    """`update_worker_pool_with_launch_configs` (all or nothing)."""
    updated = copy.copy(pool)
    upsert_launch_configs(ctx, updated, config)
    if provider_id != pool.provider_id:
        updated.previous_provider_ids = [
            *(p for p in pool.previous_provider_ids if p not in (provider_id, pool.provider_id)),
            pool.provider_id]
    updated.provider_id, updated.description, updated.owner = provider_id, description, owner
    updated.email_on_error, updated.config = email_on_error, _stored(config)
    updated.last_modified = ctx.clock()
    ctx.state.pools[pool.worker_pool_id] = updated


def update_worker_pool(call: Call) -> dict[str, Any]:
    """`updateWorkerPool`: every field replaced; launch configs left out are archived."""
    ctx, pool_id, body = call.ctx, call.params["workerPoolId"], call.body
    call.authorize(workerPoolId=pool_id, providerId=body["providerId"])
    _provider(ctx, body["providerId"], body["config"])
    if body.get("workerPoolId") and body["workerPoolId"] != pool_id:
        raise ApiError("InputError", "Incorrect workerPoolId in request body")
    pool = _pool(ctx, pool_id)
    _update(ctx, pool, body["providerId"], body["description"], body["config"], body["owner"],
            body["emailOnError"])
    return ctx.state.pools[pool_id].serialize()


def delete_worker_pool(call: Call) -> dict[str, Any]:
    """`deleteWorkerPool`: the pool stays, with provider `null-provider` and every launch
    config archived, until (in a real deployment) its workers are gone."""
    ctx, pool_id = call.ctx, call.params["workerPoolId"]
    pool = _pool(ctx, pool_id)
    config = pool.served_config()
    if "launchConfigs" in config:
        config["launchConfigs"] = []
    _update(ctx, pool, NULL_PROVIDER, pool.description, config, pool.owner,
            pool.email_on_error)
    return ctx.state.pools[pool_id].serialize()


def worker_pool(call: Call) -> dict[str, Any]:
    """`workerPool`."""
    return _pool(call.ctx, call.params["workerPoolId"]).serialize()


def list_worker_pools(call: Call) -> dict[str, Any]:
    """`listWorkerPools`: every pool (deleted ones too), by id, paginated."""
    pools = [call.ctx.state.pools[i] for i in sorted(call.ctx.state.pools)]
    page, token = paginate(pools, call.query)
    return with_token({"workerPools": [p.serialize() for p in page]}, token)


def list_launch_configs(call: Call) -> dict[str, Any]:
    """`listWorkerPoolLaunchConfigs`: by id; archived ones with `includeArchived=true`."""
    pool = _pool(call.ctx, call.params["workerPoolId"])
    archived = call.query.get("includeArchived") == "true"
    configs = [pool.launch_configs[i] for i in sorted(pool.launch_configs)
               if archived or not pool.launch_configs[i].is_archived]
    page, token = paginate(configs, call.query)
    return with_token({"workerPoolLaunchConfigs": [{
        "launchConfigId": lc.launch_config_id, "workerPoolId": pool.worker_pool_id,
        "isArchived": lc.is_archived, "configuration": copy.deepcopy(lc.configuration),
        "created": dates.to_json(lc.created), "lastModified": dates.to_json(lc.last_modified),
    } for lc in page]}, token)


def list_providers(call: Call) -> dict[str, Any]:
    """`listProviders`: the configured providers and their types."""
    providers = [{"providerId": p, "providerType": t} for p, t in call.ctx.providers.items()]
    return {"providers": providers}


HANDLERS: dict[str, Handler] = {
    "worker-manager.createWorkerPool": create_worker_pool,
    "worker-manager.updateWorkerPool": update_worker_pool,
    "worker-manager.deleteWorkerPool": delete_worker_pool,
    "worker-manager.workerPool": worker_pool,
    "worker-manager.listWorkerPools": list_worker_pools,
    "worker-manager.listWorkerPoolLaunchConfigs": list_launch_configs,
    "worker-manager.listProviders": list_providers,
}

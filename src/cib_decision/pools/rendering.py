"""A pool's definition rendered from the config and the images built: one launch config per
location with an image, shaped for the provider type (azure, aws, google), checked against
worker-manager's schemas."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from ..config.model import ImageKey, Target
from ..manifest import ReleaseImage, format_time
from ..naming import PR_POOL_DOMAIN
from ..tcschemas import CREATE_WORKER_POOL, SchemaStore, provider_config_schema
from .definition import (
    Definition,
    PoolError,
    PoolImage,
    PoolRequest,
    current_images,
    current_launch_configs,
    image_for,
    pool_target,
    provider_type,
)

# The defaults of what the config does not say (capacity, timeouts, zone, disk type) are the
# model's (config.model.Pool, Target); these are worker-manager's and ours.
QUEUE_INACTIVITY_TIMEOUT = 7200  # worker-manager's own default
PR_MAX_CAPACITY = 2  # a per-PR pool verifies images; it never serves CI
IDLE_TIMEOUT_SECS = 900  # generic-worker shuts an idle worker down after 15 minutes


def launch_config_id(pool_id: str, launch_config: dict[str, Any]) -> str:
    """`lc-` and 20 hex digits of SHA-256 over the pool id and the launch config without its
    `workerManager` section: the same content always gets the same id, other content another."""
    content = {k: v for k, v in launch_config.items() if k != "workerManager"}
    digest = hashlib.sha256((pool_id + json.dumps(content, sort_keys=True)).encode())
    return "lc-" + digest.hexdigest()[:20]


def _machine(target: Target, what: str) -> str:
    if target.machine_size:
        return target.machine_size
    raise PoolError(f"target {target.id} has no machine.type or machine.format: cannot choose "
                    f"the {what}")


def _task_drive(target: Target) -> str | None:
    return next((d["letter"] for d in target.disks
                 if not d.get("os") and d.get("letter")), None)


def _is_windows(key: ImageKey) -> bool:
    return key.os_family == "windows"


# Where the image's bootstrap installs generic-worker's own files (Firefox CI's layout): the
# config must name the chain-of-trust signing key (generic-worker exits 73 without it) and
# the livelog and taskcluster-proxy binaries.
GENERIC_WORKER_FILES = {
    "linux": {"ed25519SigningKeyLocation": "/etc/generic-worker/ed25519_key",
              "livelogExecutable": "/usr/local/bin/livelog",
              "taskclusterProxyExecutable": "/usr/local/bin/taskcluster-proxy",
              "cachesDir": "/home/generic-worker/caches",
              "downloadsDir": "/home/generic-worker/downloads"},
    "windows": {"ed25519SigningKeyLocation": "C:\\generic-worker\\ed25519-private.key",
                "livelogExecutable": "C:\\generic-worker\\livelog.exe",
                "taskclusterProxyExecutable": "C:\\generic-worker\\taskcluster-proxy.exe",
                "cachesDir": "C:\\caches", "downloadsDir": "C:\\downloads"},
}


def worker_config(key: ImageKey, target: Target, image: PoolImage) -> dict[str, Any]:
    """generic-worker settings worker-runner merges into the worker's own (it adds the
    identity, credentials and root URL): the idle timeout, where the image keeps generic-
    worker's signing key and helper binaries, and on Windows the task, cache and download
    directories on the task disk when the target has one (a non-OS disk with a `letter`).
    Every key is one generic-worker knows: it refuses to start on an unknown one. `image` is
    unused here: a new image reaches the workers through the launch config's id, which
    changes with it."""
    del image
    windows = _is_windows(key)
    config: dict[str, Any] = {"idleTimeoutSecs": IDLE_TIMEOUT_SECS,
                              **GENERIC_WORKER_FILES["windows" if windows else "linux"]}
    drive = _task_drive(target)
    if drive and windows:
        config.update(tasksDir=f"{drive}:\\", cachesDir=f"{drive}:\\caches",
                      downloadsDir=f"{drive}:\\downloads")
    return {"genericWorker": {"config": config}}


def _provenance(key: ImageKey, image: PoolImage) -> dict[str, str]:
    return {"cib-key": key.name, **({"cib-image": image.name} if image.name else {})}


def _azure(request: PoolRequest, target: Target, image: PoolImage, spot: bool
           ) -> dict[str, Any]:
    if target.region != image.region:
        raise PoolError(f"pool {request.pool.id}: Azure target {target.id} cannot serve "
                        f"{image.region}: an Azure worker needs a target in its own region "
                        "(resource group and network); `copies` only replicates the image")
    subscription = re.match(r"/subscriptions/([^/]+)/", image.id)
    group = target.group
    if not subscription or not group:
        raise PoolError(f"pool {request.pool.id}: cannot place workers in {target.id}: "
                        + ("the target has no `group`" if not group else
                           f"image id {image.id!r} names no subscription"))
    network = target.network
    vnet = network.get("name") or group.replace("rg-", "vn-", 1)
    subnet = (network.get("subnet") or {}).get("name") or group.replace("rg-", "sn-", 1)
    launch_config: dict[str, Any] = {
        "location": image.region,
        "subnetId": (f"/subscriptions/{subscription.group(1)}/resourceGroups/{group}/providers/"
                     f"Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"),
        "hardwareProfile": {"vmSize": _machine(target, "VM size")},
        "storageProfile": {
            "imageReference": {"id": image.id},
            "osDisk": {
                "createOption": "FromImage",
                "caching": target.os_disk.get("caching", "ReadWrite"),
                "osType": "Windows" if _is_windows(request.key) else "Linux",
                "managedDisk": {"storageAccountType": target.disk_type(target.os_disk)},
            },
        },
        "tags": {**target.tags, **_provenance(request.key, image)},
        "workerConfig": worker_config(request.key, target, image),
    }
    if spot:
        launch_config.update(priority="Spot", evictionPolicy="Delete",
                             billingProfile={"maxPrice": -1})
    return launch_config


def _aws(request: PoolRequest, target: Target, image: PoolImage, spot: bool) -> dict[str, Any]:
    tags = {**target.tags, **_provenance(request.key, image)}
    launch: dict[str, Any] = {
        "ImageId": image.id,
        "InstanceType": _machine(target, "instance type"),
        "TagSpecifications": [{"ResourceType": "instance",
                               "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    }
    if spot:
        launch["InstanceMarketOptions"] = {"MarketType": "spot"}
    return {"region": image.region, "launchConfig": launch,
            "workerConfig": worker_config(request.key, target, image)}


def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def _google(request: PoolRequest, target: Target, image: PoolImage, spot: bool
            ) -> dict[str, Any]:
    zone = target.zone_in(image.region)
    source = image.id
    if "/" not in source:
        project = target.project
        source = f"projects/{project}/global/images/{source}" if project else (
            f"global/images/{source}")
    disk = target.os_disk
    params: dict[str, Any] = {
        "sourceImage": source,
        "diskType": f"zones/{zone}/diskTypes/{target.disk_type(disk)}"}
    if disk.get("size"):
        params["diskSizeGb"] = disk["size"]
    scheduling: dict[str, Any] = {"onHostMaintenance": "terminate"}
    if spot:
        scheduling.update(provisioningModel="SPOT", instanceTerminationAction="DELETE")
    return {
        "region": image.region, "zone": zone,
        "machineType": f"zones/{zone}/machineTypes/{_machine(target, 'machine type')}",
        "disks": [{"type": "PERSISTENT", "boot": True, "autoDelete": True,
                   "initializeParams": params}],
        "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
        "scheduling": scheduling,
        "labels": {_label(k): _label(v) for k, v in _provenance(request.key, image).items()},
        "workerConfig": worker_config(request.key, target, image),
    }


RENDERERS = {"azure": _azure, "aws": _aws, "google": _google}


def description(request: PoolRequest, provider: str, regions: Iterable[str]) -> str:
    """The pool's description: what it is and that cib owns it; a per-PR pool adds machine-
    readable `cib-pull-request` and `cib-expires` lines (worker-manager has no metadata)."""
    lines = [
        f"Workers from the images of `{request.key.name}` ({request.key.image.get('os')}) on "
        f"{provider} in {', '.join(regions)}.",
        f"Deployed by cib-decision for {request.environment.name}; edits by hand are replaced "
        "by the next deploy.",
    ]
    if request.pull_request:
        if request.expires is None:
            raise PoolError(f"per-PR pool {request.pool_id} needs an expiry (--ttl)")
        lines += ["", f"Per-pull-request copy of {request.pool.id}; deleted when the pull "
                      "request closes or expires.",
                  f"cib-pull-request: {request.pull_request}",
                  f"cib-expires: {format_time(request.expires)}"]
    return "\n".join(lines)


def _check_request(request: PoolRequest) -> None:
    pool = request.pool
    if pool.domain == PR_POOL_DOMAIN:
        raise PoolError(f"pool {pool.id}: the domain {PR_POOL_DOMAIN} is reserved for per-PR "
                        "pools")
    if request.pull_request and not request.environment.pull_requests:
        raise PoolError(f"environment {request.environment.name} does not take pull requests: "
                        f"no per-PR pool is deployed there")
    if not pool.owner:
        raise PoolError(f"pool {pool.id} has no owner: worker-manager needs an email address")


def _capacity(request: PoolRequest) -> tuple[int, int]:
    low, high = request.pool.capacity
    if request.pull_request:
        low, high = 0, min(high, PR_MAX_CAPACITY)
    return low, max(low, high)


def render(request: PoolRequest, images: Iterable[ReleaseImage],
           current: dict[str, Any] | None = None, frozen: Iterable[str] = ()) -> Definition:
    """The definition of `request`'s pool. Each location runs the new image of its target
    (`pool_target`) from `images` when there is one, else the image it runs in `current` (the
    pool as worker-manager has it, or None); a location with neither gets no launch config,
    and a pool left with none is a PoolError. A location in `frozen` (its build failed in
    this graph) keeps the launch config it has exactly: the target's new settings were never
    built into an image, so they must not reach its workers either."""
    _check_request(request)
    key, pool = request.key, request.pool
    provider = provider_type(key, pool)
    kept = current_images(provider, current)
    as_they_are = current_launch_configs(provider, current)
    images = list(images)
    chosen: dict[str, PoolImage] = {}
    launch_configs, missing = [], []
    spot = pool.spot
    frozen = set(frozen)
    for region in sorted(set(pool.locations)):
        if region in frozen and region in as_they_are:
            chosen[region] = kept[region]
            launch_configs.append(as_they_are[region])
            continue
        target = pool_target(key, pool, region)
        built = image_for(target, region, images) if target is not None else None
        image = PoolImage(region, built.id, built.name) if built else kept.get(region)
        if target is None or image is None:
            missing.append(region)
            continue
        launch_config = RENDERERS[provider](request, target, image, spot)
        launch_config["workerManager"] = {
            "launchConfigId": launch_config_id(request.pool_id, launch_config)}
        chosen[region] = image
        launch_configs.append(launch_config)
    if not launch_configs:
        raise PoolError(
            f"pool {request.pool_id} would have no launch config: none of its locations "
            f"({', '.join(sorted(set(pool.locations)))}) has an image from this build or in "
            "the pool's current definition; refusing to write it")
    low, high = _capacity(request)
    body = {
        "providerId": pool.provider,
        "description": description(request, provider, sorted(chosen)),
        "config": {
            "minCapacity": low, "maxCapacity": high,
            "lifecycle": {
                "registrationTimeout": pool.registration_timeout,
                "reregistrationTimeout": pool.reregistration_timeout,
                "queueInactivityTimeout": QUEUE_INACTIVITY_TIMEOUT,
            },
            "launchConfigs": launch_configs,
        },
        "owner": pool.owner,
        "emailOnError": not request.pull_request,
    }
    return Definition(request.pool_id, provider, body, chosen, tuple(missing))


def validate(definition: Definition, store: SchemaStore) -> Definition:
    """`definition` when worker-manager would accept it: the request schema, then `config`
    against its provider type's schema (the service's two steps); PoolError listing every
    problem otherwise."""
    problems = [f"request {p}" for p in store.errors(CREATE_WORKER_POOL, definition.body)]
    if not problems:
        problems = [f"config {p}" for p in store.errors(
            provider_config_schema(definition.provider_type), definition.body["config"])]
    if problems:
        raise PoolError("\n".join([f"pool {definition.pool_id}: the rendered definition is not "
                                   "valid for worker-manager:", *(f"  {p}" for p in problems)]))
    return definition

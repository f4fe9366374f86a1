"""Worker pool definitions: render them from the config and the images built, and deploy them
to worker-manager as a diff (orchestration).

A definition is what `createWorkerPool` takes: `providerId`, `description`, `config`
(`minCapacity`, `maxCapacity`, `lifecycle`, `launchConfigs`), `owner`, `emailOnError`. It has
one launch config per pool location that has an image, shaped for the provider type the pool's
platform maps to (`azure` -> azure, `amazon` -> aws, `google` -> google). `docs/pools.md`
describes each field, the defaults and the rules below.

Rules:
- a location's image is the new one from this build (release or machine-image records),
  else the image its launch config runs in the current definition (a failed or skipped build
  keeps the previous image; a `pool-deploy`, which is given no images, keeps every image the
  pool runs), else the location gets no launch config;
- a pool is never written without a launch config;
- launch config ids are derived from content, so a changed launch config gets a new id and
  worker-manager archives the old one;
- per-PR pools (`naming.pr_pool_id`) record their expiry as a `cib-expires: <time>` line of
  the description, are capped in capacity and never email; they are deployed only in
  environments that take pull requests.

`apply` reads the current pool, writes only when something differs (ignoring fields the server
sets), creates on 404 and updates on a create that answers 409, so a rerun of an interrupted
apply converges. `teardown` and `sweep` delete per-PR pools, and only those.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from taskcluster.exceptions import TaskclusterFailure

from .config.model import Environment, Fleet, ImageKey, Pool, Target, azure_disk_sku
from .errors import CibError
from .manifest import (
    MACHINE_IMAGE_ARTIFACT,
    RELEASE_ARTIFACT,
    MachineImageRecord,
    RecordError,
    Release,
    ReleaseImage,
    format_time,
    parse_machine_image,
    parse_release,
    parse_time,
    smoke_test_problems,
    verify,
)
from .naming import PR_POOL_DOMAIN, pr_pool_id
from .suggest import closest
from .tc import failure
from .tcschemas import CREATE_WORKER_POOL, SchemaStore, provider_config_schema

PROVIDER_TYPES = {"azure": "azure", "amazon": "aws", "google": "google"}
NULL_PROVIDER = "null-provider"
# The fields of a definition a caller sets; everything else in `workerPool` is the server's.
DEFINITION_FIELDS = ("providerId", "description", "config", "owner", "emailOnError")

# Defaults for what the config does not say (see docs/pools.md).
DEFAULT_MIN_CAPACITY = 0
DEFAULT_MAX_CAPACITY = 1
DEFAULT_REGISTRATION_TIMEOUT = 3600  # seconds from request to `registerWorker`
DEFAULT_REREGISTRATION_TIMEOUT = 345600  # worker-manager's own default (4 days)
QUEUE_INACTIVITY_TIMEOUT = 7200  # worker-manager's own default
PR_MAX_CAPACITY = 2  # a per-PR pool verifies images; it never serves CI
IDLE_TIMEOUT_SECS = 900  # generic-worker shuts an idle worker down after 15 minutes
GOOGLE_DEFAULT_ZONE = "b"  # every GCP region has a zone `<region>-b`
GOOGLE_DISK_TYPE = "pd-balanced"
EXPIRES_LINE = re.compile(r"^cib-expires: (\S+)\s*$", re.MULTILINE)


class PoolError(CibError):
    """A pool that cannot be rendered or deployed; the message says why."""


@dataclass(frozen=True)
class PoolImage:
    """The image one location's launch config runs: new from this build, or kept."""

    region: str
    id: str
    name: str | None = None
    kept: bool = False


@dataclass(frozen=True)
class PoolRequest:
    """One pool to render: its config, key and environment, and for a pull request's pool the
    pull request and when the pool expires."""

    key: ImageKey
    pool: Pool
    environment: Environment
    pull_request: int | None = None
    expires: datetime | None = None

    @property
    def pool_id(self) -> str:
        """The id the pool is deployed as: its own, or its per-PR pool's."""
        return pr_pool_id(self.pool.id, self.pull_request) if self.pull_request else self.pool.id


@dataclass(frozen=True)
class Definition:
    """A rendered pool: the request body, and which image each location runs."""

    pool_id: str
    provider_type: str
    body: dict[str, Any]
    images: dict[str, PoolImage]
    missing: tuple[str, ...] = ()

    @property
    def launch_configs(self) -> list[dict[str, Any]]:
        return self.body["config"]["launchConfigs"]


@dataclass
class Outcome:
    """What `apply` did: `unchanged`, `created` or `updated`, and to which launch configs."""

    pool_id: str
    action: str
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)


Log = Callable[[str], None]


# --- finding pools ---------------------------------------------------------------------------


def find_pool(fleet: Fleet, pool_id: str) -> tuple[ImageKey, Pool]:
    """The key and config of pool `pool_id`; PoolError (with a suggestion) when unknown."""
    for key in fleet.keys.values():
        for pool in key.pools:
            if pool.id == pool_id:
                return key, pool
    hint = closest(pool_id, fleet.pools)
    raise PoolError(f"no pool {pool_id!r} in the config" +
                    (f"; did you mean {hint!r}?" if hint else ""))


def provider_type(key: ImageKey, pool: Pool) -> str:
    """worker-manager's provider type for the pool: from its platform, else from its key's
    only platform."""
    platform = pool.platform
    if platform is None and len(key.platforms) == 1:
        platform = next(iter(key.platforms))
    if platform not in PROVIDER_TYPES:
        raise PoolError(f"pool {pool.id}: set `platform` (one of {', '.join(PROVIDER_TYPES)}); "
                        f"key {key.name} builds on {', '.join(sorted(key.platforms))}")
    return PROVIDER_TYPES[platform]


def pool_target(key: ImageKey, pool: Pool, region: str) -> Target | None:
    """The target whose image the pool runs in `region` (`ImageKey.serving_target`); a
    PoolError when the pool's cloud cannot be told (`provider_type`)."""
    provider_type(key, pool)
    return key.serving_target(pool, region)


def image_for(target: Target, region: str, images: Iterable[ReleaseImage]
              ) -> ReleaseImage | None:
    """The image `target` built for `region`: its own (same target id), or in a region it
    copies to, the copy (`<platform>/<region>`)."""
    wanted = target.id if target.region == region else f"{target.platform}/{region}"
    return next((i for i in images if i.target == wanted and i.region == region), None)


# --- launch configs --------------------------------------------------------------------------


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
    network = target.raw.get("network") or {}
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
                "managedDisk": {"storageAccountType": azure_disk_sku(target.os_disk)},
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
    zone = target.raw.get("zone") or ""
    if not zone.startswith(f"{image.region}-"):  # none, or the zone of another region
        zone = f"{image.region}-{GOOGLE_DEFAULT_ZONE}"
    source = image.id
    if "/" not in source:
        project = target.raw.get("project")
        source = f"projects/{project}/global/images/{source}" if project else (
            f"global/images/{source}")
    disk = target.os_disk
    params: dict[str, Any] = {
        "sourceImage": source,
        "diskType": f"zones/{zone}/diskTypes/{disk.get('variant', GOOGLE_DISK_TYPE)}"}
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


def image_of(provider: str, launch_config: dict[str, Any]) -> PoolImage | None:
    """The image an existing launch config runs (and its name, from our provenance tags), or
    None when it cannot be read."""
    try:
        if provider == "azure":
            region, image_id = (launch_config["location"],
                                launch_config["storageProfile"]["imageReference"]["id"])
            name = (launch_config.get("tags") or {}).get("cib-image")
        elif provider == "aws":
            region, image_id = launch_config["region"], launch_config["launchConfig"]["ImageId"]
            tags = [t for spec in launch_config["launchConfig"].get("TagSpecifications") or ()
                    for t in spec.get("Tags") or ()]
            name = next((t["Value"] for t in tags if t.get("Key") == "cib-image"), None)
        else:
            boot = next(d for d in launch_config["disks"] if d.get("boot"))
            region, image_id = launch_config["region"], boot["initializeParams"]["sourceImage"]
            name = (launch_config.get("labels") or {}).get("cib-image")
    except (KeyError, TypeError, StopIteration):
        return None
    if not isinstance(region, str) or not isinstance(image_id, str):
        return None
    return PoolImage(region, image_id, name if isinstance(name, str) else None, kept=True)


def current_images(provider: str, current: dict[str, Any] | None) -> dict[str, PoolImage]:
    """The image each region runs in the current definition (first launch config wins); none
    for a missing or deleted (`null-provider`) pool."""
    if not current or current.get("providerId") == NULL_PROVIDER:
        return {}
    images: dict[str, PoolImage] = {}
    for launch_config in (current.get("config") or {}).get("launchConfigs") or ():
        image = image_of(provider, launch_config) if isinstance(launch_config, dict) else None
        if image is not None:
            images.setdefault(image.region, image)
    return images


# --- definitions -----------------------------------------------------------------------------


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


def expiry(pool_description: str) -> datetime | None:
    """The `cib-expires:` time recorded in a description, or None."""
    match = EXPIRES_LINE.search(pool_description or "")
    if not match:
        return None
    try:
        return parse_time(match.group(1))
    except ValueError:
        return None


def _check_request(request: PoolRequest) -> None:
    pool = request.pool
    if pool.domain == PR_POOL_DOMAIN:
        raise PoolError(f"pool {pool.id}: the domain {PR_POOL_DOMAIN} is reserved for per-PR "
                        "pools")
    if request.pull_request and not request.environment.pull_requests:
        raise PoolError(f"environment {request.environment.name} does not take pull requests: "
                        f"no per-PR pool is deployed there")
    if not pool.raw.get("owner"):
        raise PoolError(f"pool {pool.id} has no owner: worker-manager needs an email address")


def _capacity(request: PoolRequest) -> tuple[int, int]:
    capacity = request.pool.raw.get("capacity") or {}
    low = capacity.get("minimum", DEFAULT_MIN_CAPACITY)
    high = capacity.get("maximum", DEFAULT_MAX_CAPACITY)
    if request.pull_request:
        low, high = 0, min(high, PR_MAX_CAPACITY)
    return low, max(low, high)


def current_launch_configs(provider: str, current: dict[str, Any] | None
                           ) -> dict[str, dict[str, Any]]:
    """The launch config each region has in the current definition (first wins)."""
    if not current or current.get("providerId") == NULL_PROVIDER:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for launch_config in (current.get("config") or {}).get("launchConfigs") or ():
        image = image_of(provider, launch_config) if isinstance(launch_config, dict) else None
        if image is not None:
            found.setdefault(image.region, launch_config)
    return found


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
    spot = pool.raw.get("lifecycle") == "spot"
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
        "providerId": pool.raw["provider"],
        "description": description(request, provider, sorted(chosen)),
        "config": {
            "minCapacity": low, "maxCapacity": high,
            "lifecycle": {
                "registrationTimeout": (pool.raw.get("timeout") or {}).get(
                    "registration", DEFAULT_REGISTRATION_TIMEOUT),
                "reregistrationTimeout": (pool.raw.get("timeout") or {}).get(
                    "reregistration", DEFAULT_REREGISTRATION_TIMEOUT),
                "queueInactivityTimeout": QUEUE_INACTIVITY_TIMEOUT,
            },
            "launchConfigs": launch_configs,
        },
        "owner": pool.raw["owner"],
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


def comparable(pool: dict[str, Any] | None) -> dict[str, Any] | None:
    """The caller-set fields of a pool as worker-manager returns it (None for no pool)."""
    return None if pool is None else {k: pool.get(k) for k in DEFINITION_FIELDS}


# --- the images a deploy is given ------------------------------------------------------------


Record = Release | MachineImageRecord


def parse_record(data: Any, source: str) -> Record:
    """A release record (it has `images`) or a machine-image record, parsed strictly."""
    if isinstance(data, dict) and "images" in data:
        return parse_release(data, source)
    return parse_machine_image(data, source)


def collect_images(records: Iterable[Record], key: str, log: Log) -> list[ReleaseImage]:
    """The images of `key` in `records`. Every release must verify (RecordError otherwise: a
    deploy never runs an image from a record that fails its seal); records of other keys are
    skipped. A machine-image record gives its image and its copies in other regions. Per
    target, a release's image wins over a machine-image record's, and of two the newer
    (`created`) wins."""
    ranked: dict[str, tuple[tuple[int, datetime], ReleaseImage]] = {}
    for record in records:
        if record.key != key:
            log(f"skipping a record of key {record.key}: the pool runs images of {key}")
            continue
        if isinstance(record, Release):
            verify(record)
            entries, rank = record.images, (1, parse_time(record.created))
        else:
            entries, rank = record.images(), (0, parse_time(record.created))
        for image in entries:
            if image.target not in ranked or ranked[image.target][0] < rank:
                ranked[image.target] = (rank, image)
    return [image for _, image in sorted(ranked.values(), key=lambda r: r[1].target)]


class UntestedImages(CibError):
    """A key with smoke tests whose records hold no release that passed them: nothing is
    deployed (exit 3), the pool keeps its images."""

    exit_code = 3


def tested_records(records: Iterable[Record], key: str, log: Log) -> list[Record]:
    """For a key with smoke tests: the records a pool may deploy, which are its releases
    whose every image passed them. Machine-image records (no test ran on them as far as they
    say) and releases with failed or missing tests are named and left out; records of other
    keys pass untouched. UntestedImages when `records` had images of `key` and none may be
    deployed."""
    kept, refused = [], []
    for record in records:
        if record.key != key:
            kept.append(record)
        elif isinstance(record, Release):
            problems = smoke_test_problems(record)
            if problems:
                refused.append(f"release {record.sha256[:12]}: {'; '.join(problems)}")
            else:
                kept.append(record)
        else:
            refused.append(f"{record.image_id} ({record.target}): a build's record; a tested "
                           "key's images are deployed from their release only")
    for reason in refused:
        log(f"not deploying {reason}")
    if refused and not any(r.key == key for r in kept):
        raise UntestedImages(f"{key} has smoke tests and none of its images given here "
                             f"passed them ({len(refused)} refused, named above): nothing is "
                             "deployed, the pool keeps its images")
    return kept


def read_artifact(queue: Any, task_id: str, name: str) -> Any | None:
    """The JSON content of artifact `name` of the latest run of `task_id`, or None when the
    task has no such artifact (404, or an `error` artifact). Follows the queue's answer when
    it is a URL to fetch (`{storageType, url}`)."""
    try:
        result = queue.getLatestArtifact(task_id, name)
    except TaskclusterFailure as exc:
        if _status(exc) == 404:
            return None
        raise _failure(f"give artifact {name} of task", task_id, exc, "queue") from None
    if isinstance(result, dict) and set(result) == {"storageType", "url"}:
        if result["storageType"] == "error":
            return None
        return _fetch_json(result["url"], f"artifact {name} of task {task_id}")
    if isinstance(result, dict) and set(result) == {"response"}:
        raise RecordError(f"artifact {name} of task {task_id} is not JSON")
    return result


def _fetch_json(url: str, what: str, attempts: int = 5) -> Any:
    for attempt in range(attempts):
        try:
            response = requests.get(url, timeout=60)
        except requests.RequestException as exc:
            problem = str(exc)
        else:
            if response.status_code < 500:
                break
            problem = f"status {response.status_code}"
        if attempt + 1 == attempts:
            raise PoolError(f"cannot download {what}: {problem}")
        time.sleep(0.1 * 2 ** attempt)
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise PoolError(f"cannot download {what}: status {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise RecordError(f"{what} is not JSON") from None


def dependency_records(queue: Any, task_id: str, log: Log) -> tuple[list[Record], str]:
    """The records the dependencies of task `task_id` left (`public/release.json`, else
    `public/machine-image.json`; a dependency with neither, such as the decision task or a
    failed build, gives none), and the task's `created` time."""
    sources, created = dependency_record_sources(queue, task_id, log)
    return [record for _, record in sources], created


def dependency_tasks(queue: Any, task_id: str, kind: str
                     ) -> dict[str, tuple[dict[str, Any], str]]:
    """The definition and state of each dependency of task `task_id` of `kind` (its
    `tags.kind`, as taskgraph tags every task), by task id."""
    try:
        dependencies = queue.task(task_id).get("dependencies") or ()
        definitions = {d: queue.task(d) for d in dependencies}
        return {d: (definition, queue.status(d)["status"]["state"])
                for d, definition in definitions.items()
                if (definition.get("tags") or {}).get("kind") == kind}
    except TaskclusterFailure as exc:
        raise _failure("give the dependencies of task", task_id, exc, "queue") from None


def dependency_states(queue: Any, task_id: str, kind: str) -> dict[str, str]:
    """The state of each dependency of task `task_id` of `kind`, by task id."""
    return {d: state for d, (_, state) in dependency_tasks(queue, task_id, kind).items()}


def dependency_record_sources(queue: Any, task_id: str, log: Log
                              ) -> tuple[list[tuple[str, Record]], str]:
    """As `dependency_records`, each record with the id of the task that left it (what a
    release pointer names)."""
    try:
        task = queue.task(task_id)
    except TaskclusterFailure as exc:
        raise _failure("give the definition of task", task_id, exc, "queue") from None
    records: list[tuple[str, Record]] = []
    for dependency in task.get("dependencies") or ():
        for name in (RELEASE_ARTIFACT, MACHINE_IMAGE_ARTIFACT):
            data = read_artifact(queue, dependency, name)
            if data is not None:
                records.append((dependency, parse_record(data, f"task {dependency} {name}")))
                log(f"read {name} of task {dependency}")
                break
        else:
            log(f"task {dependency} left no image record")
    return records, task["created"]


# --- worker-manager ----------------------------------------------------------------------------


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def _failure(what: str, pool_id: str, exc: Exception, service: str = "worker-manager"
             ) -> CibError:
    return failure(service, f"{what} {pool_id}", exc, PoolError)


def _call(what: str, pool_id: str, call: Callable[[], Any], *, allow: tuple[int, ...] = ()
          ) -> Any:
    """`call()`, with worker-manager's refusals as PoolError; a status in `allow` is returned
    as that number instead."""
    try:
        return call()
    except TaskclusterFailure as exc:
        if _status(exc) in allow:
            return _status(exc)
        raise _failure(what, pool_id, exc) from None


def read_pool(wm: Any, pool_id: str) -> dict[str, Any] | None:
    """The pool as worker-manager has it, or None when there is none (404)."""
    result = _call("read", pool_id, lambda: wm.workerPool(pool_id), allow=(404,))
    return None if result == 404 else result


def list_pools(wm: Any) -> list[dict[str, Any]]:
    """Every pool of the deployment (following `continuationToken`)."""
    from .tc import pages

    return list(pages(lambda query: _call("list", "worker pools",
                                          lambda: wm.listWorkerPools(query=query)),
                      "workerPools"))


def _launch_config_ids(pool: dict[str, Any] | None) -> list[str]:
    if not pool or pool.get("providerId") == NULL_PROVIDER:
        return []
    return [(lc.get("workerManager") or {}).get("launchConfigId") or "(no id)"
            for lc in (pool.get("config") or {}).get("launchConfigs") or ()
            if isinstance(lc, dict)]


def changes(definition: Definition, current: dict[str, Any] | None) -> Outcome:
    """Which launch configs a write of `definition` over `current` adds, keeps and archives
    (worker-manager archives those missing from the new list)."""
    before = _launch_config_ids(current)
    after = [lc["workerManager"]["launchConfigId"] for lc in definition.launch_configs]
    return Outcome(definition.pool_id, "unchanged",
                   added=[i for i in after if i not in before],
                   kept=[i for i in after if i in before],
                   archived=[i for i in before if i not in after])


def write(wm: Any, definition: Definition, current: dict[str, Any] | None, log: Log,
          dry_run: bool = False) -> Outcome:
    """Write `definition` when it differs from `current`: create when there is no pool,
    update otherwise; a create answered with 409 (created meanwhile, or deleted and still
    listed) becomes an update, an update answered with 404 (removed meanwhile) a create.
    `dry_run` only says what it would do."""
    pool_id, body = definition.pool_id, definition.body
    outcome = changes(definition, current)
    for region, image in sorted(definition.images.items()):
        if image.kept:
            log(f"{pool_id}: {region} keeps the image it runs ({image.name or image.id}); "
                "no new image for it")
    for region in definition.missing:
        log(f"{pool_id}: {region} has no image: no launch config")
    if comparable(current) == body:
        log(f"{pool_id}: unchanged ({len(outcome.kept)} launch configs)")
        return outcome
    create = current is None
    if dry_run:
        outcome.action = "would create" if create else "would update"
        log(f"{pool_id}: {outcome.action}; launch configs: {_summary(definition, outcome)}")
        return outcome
    for _ in range(3):
        if create:
            result = _call("create", pool_id, lambda: wm.createWorkerPool(pool_id, body),
                           allow=(409,))
            outcome.action = "created"
        else:
            result = _call("update", pool_id, lambda: wm.updateWorkerPool(pool_id, body),
                           allow=(404,))
            outcome.action = "updated"
        if result not in (404, 409):
            break
        create = result == 404
    else:
        raise PoolError(f"{pool_id}: worker-manager kept answering 404 to updates and 409 to "
                        "creates; try again")
    log(f"{pool_id}: {outcome.action}; launch configs: {_summary(definition, outcome)}")
    return outcome


def _summary(definition: Definition, outcome: Outcome) -> str:
    region = {lc["workerManager"]["launchConfigId"]:
              getattr(image_of(definition.provider_type, lc), "region", "?")
              for lc in definition.launch_configs}
    added = ", ".join(f"{i} ({region[i]})" for i in outcome.added)
    archived = ", ".join(outcome.archived)
    return (f"{len(outcome.added)} added" + (f" [{added}]" if added else "") +
            f", {len(outcome.kept)} kept, {len(outcome.archived)} archived" +
            (f" [{archived}]" if archived else ""))


def apply(wm: Any, request: PoolRequest, images: Iterable[ReleaseImage], store: SchemaStore,
          log: Log, dry_run: bool = False, frozen: Iterable[str] = ()
          ) -> tuple[Definition, Outcome]:
    """Deploy `request`'s pool with `images`: read the current pool, render (keeping the
    images of locations not built, and the launch configs of `frozen` locations, whose build
    failed, as they are), validate against the genuine schemas, write if changed."""
    current = read_pool(wm, request.pool_id)
    definition = validate(render(request, images, current, frozen), store)
    return definition, write(wm, definition, current, log, dry_run)


def failed_build_regions(queue: Any, task_id: str, request: PoolRequest) -> set[str]:
    """The pool's locations served by a target whose machine-image dependency of task
    `task_id` failed (a build task is named `machine-image-<key>-<target>` in its
    `tags.label`, as taskgraph tags it)."""
    failed = {(definition.get("tags") or {}).get("label") for definition, state
              in dependency_tasks(queue, task_id, "machine-image").values()
              if state in ("failed", "exception")}
    if not failed:
        return set()
    from .taskgraph.items import machine_image_name  # the label rule lives with the graph

    key, pool = request.key, request.pool
    return {region for region in pool.locations
            if (target := key.serving_target(pool, region)) is not None
            and f"machine-image-{machine_image_name(key.name, target.id)}" in failed}


def _is_pr_pool(pool_id: str) -> bool:
    return pool_id.startswith(f"{PR_POOL_DOMAIN}/")


def _delete(wm: Any, pool_id: str, log: Log) -> bool:
    if not _is_pr_pool(pool_id):  # never: callers only pass per-PR pools
        raise PoolError(f"refusing to delete {pool_id}: not a per-PR pool")
    if _call("delete", pool_id, lambda: wm.deleteWorkerPool(pool_id), allow=(404,)) == 404:
        log(f"{pool_id}: already gone")
        return False
    return True


def teardown(wm: Any, pull_request: int, pool_ids: Iterable[str], log: Log) -> list[str]:
    """Delete every per-PR pool of `pull_request`: the `naming.pr_pool_id` of each of
    `pool_ids` (the config's pools), and any pool of the per-PR domain named `...-pr<N>`.
    Pools already deleted (`null-provider`) are skipped. When the caller may not list pools,
    only the config's per-PR pools are deleted. Returns the pools deleted."""
    wanted = {pr_pool_id(pool, pull_request) for pool in pool_ids}
    suffix = f"-pr{pull_request}"
    try:
        listed = list_pools(wm)
    except PoolError as exc:
        if "(403)" not in str(exc):
            raise
        log(f"cannot list worker pools ({exc}); deleting the config's per-PR pools by id")
        candidates = sorted(wanted)
    else:
        candidates = []
        for pool in listed:
            pool_id = pool.get("workerPoolId", "")
            if pool_id in wanted or (_is_pr_pool(pool_id) and pool_id.endswith(suffix)):
                if pool.get("providerId") == NULL_PROVIDER:
                    log(f"{pool_id}: already deleted")
                else:
                    candidates.append(pool_id)
        candidates.sort()
    deleted = [pool_id for pool_id in candidates if _delete(wm, pool_id, log)]
    for pool_id in deleted:
        log(f"{pool_id}: deleted (pull request {pull_request})")
    if not candidates:
        log(f"pull request {pull_request} has no per-PR pools")
    return deleted


def sweep(wm: Any, now: datetime, log: Log) -> list[str]:
    """Delete the per-PR pools whose recorded `cib-expires` time is not after `now`. Pools
    outside the per-PR domain, pools without an expiry and deleted pools are left alone.
    Returns the pools deleted."""
    deleted = []
    for pool in sorted(list_pools(wm), key=lambda p: p.get("workerPoolId", "")):
        pool_id = pool.get("workerPoolId", "")
        if not _is_pr_pool(pool_id) or pool.get("providerId") == NULL_PROVIDER:
            continue
        expires = expiry(pool.get("description", ""))
        if expires is None:
            log(f"{pool_id}: no cib-expires recorded; left alone")
        elif expires > now:
            log(f"{pool_id}: expires {format_time(expires)}; kept")
        elif _delete(wm, pool_id, log):
            log(f"{pool_id}: expired {format_time(expires)}; deleted")
            deleted.append(pool_id)
    return deleted

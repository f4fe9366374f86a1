"""The items of cib's kinds: what one input of a kind's transforms is, typed, and how the
fleet gives them (`cib-items` in kind.yml names the type; loader.py yields them).

Each type is a taskgraph `Schema` (kebab-case keys, no unknown field) that the kind's
transforms validate first (`transforms.add_validate(...)`, taskgraph's idiom), and one function
from the fleet, its digests and the parameters to the items: the config (lint), the decision's
environment (drift, stats), the promote action's input (promote), a cloud region (purge), the
task environment (task-env), a disk image, a machine image (key and target), an image's smoke
tests, a key (tag) or a pool (worker-pool, verify).

Targets on clouds cib does not build machine images on yet (`selection.not_built`) are left
out: no machine image, no disk image or tag for them alone, and pools running their images get
no deploy or verification (`selection.pool_not_built`). The graph holds no task that could only
fail; the `cib` target method lists what was left out, and why, through the selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import msgspec
from taskgraph.util.schema import Schema

from ..config.model import Fleet, ImageKey, Pool, Target
from ..digests import pool_digest, tag_digest, test_run_digest, tests_digest
from ..naming import PR_POOL_DOMAIN, pr_pool_id
from ..selection import not_built, pool_not_built


class ConfigItem(Schema):
    """The config as a whole (lint)."""

    name: str


class PullRequestItem(Schema):
    """A pull request (pr-teardown)."""

    name: str
    pull_request: int


class PromoteItem(Schema):
    """The promote action's input (promote); checked against the config by its transforms."""

    name: str
    key: str
    from_: str = msgspec.field(name="from")
    to: str


class EnvironmentItem(Schema):
    """The decision's own environment (drift, stats)."""

    name: str
    environment: str


class CloudItem(Schema):
    """A cloud region of the fleet's targets, or worker-manager with the pools it purges."""

    name: str
    platform: str
    region: str
    pools: list[str] | None = None


class TaskEnvItem(Schema):
    """The task environment of the graph's revision (task-env)."""

    name: str
    cache_name: str
    digest: str
    package: str | None


class DiskImageItem(Schema):
    """A key's disk image (disk-image)."""

    name: str
    key: str
    cache_name: str
    digest: str


class TargetItem(Schema):
    """What the items of one key and target have."""

    name: str
    key: str
    cache_name: str
    target: str
    platform: str
    region: str
    digest: str


class MachineImageItem(TargetItem):
    """A target's machine image (machine-image)."""

    disk_image: bool


class ImageTestItem(TargetItem):
    """The smoke tests of a target's machine image (test-image)."""

    tests: list[str]


class KeyItem(Schema):
    """A key's images as one release (tag)."""

    name: str
    key: str
    cache_name: str
    targets: list[str]
    digest: str


class PoolItem(Schema):
    """A worker pool of a key (worker-pool, verify)."""

    name: str
    key: str
    pool: str
    deploy_pool: str
    cache_name: str
    digest: str
    platform: str
    provider: str
    targets: list[str]
    os: str


@cache
def _slug(text: str) -> str:
    """`text` in lower case, every other character than a letter or digit a `-` (the same few
    target and pool ids come back for every key)."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def needs_disk_image(key: ImageKey, platform: str) -> bool:
    """A machine image on `platform` is made from the disk image unless `image.base` says
    which base image of that cloud to start from."""
    return platform not in (key.image.get("base") or {})


def pool_targets(key: ImageKey, pool: Pool) -> list[str]:
    """The targets whose images a pool runs (`ImageKey.serving_target`: its domain's resource
    group where a region has several, a copying target where it has none): the pool's deploy
    waits for them, and a rebuild of any of them redeploys it."""
    return [t.id for t in key.serving_targets(pool)]


def buildable_targets(key: ImageKey, fleet: Fleet | None = None,
                      environment: str | None = None) -> list[Target]:
    """The key's targets on clouds cib builds machine images on and the repository and the
    environment enable."""
    return [t for t in key.targets if not not_built(t.platform, fleet, environment)]


def machine_image_name(key: str, target_id: str) -> str:
    """The item name of a machine image: its task is `machine-image-<name>`."""
    return f"{key}-{_slug(target_id)}"


def pool_name(pool_id: str) -> str:
    """The item name of a pool: its tasks are `worker-pool-<name>` and `verify-<name>`."""
    return _slug(pool_id)


def cache_entry(cache_type: str, name: str, digest: str) -> str:
    """How `cib plan` names one cached task: `<type>/<name>/<digest>`."""
    return f"{cache_type}/{name}/{digest}"


# Kinds whose tasks are content-addressed: items -> the cache type of their tasks.
CACHED_ITEMS = {"disk-images": ("disk-image",), "machine-images": ("machine-image",),
                "image-tests": ("test-image",), "keys": ("tag",),
                "pools": ("worker-pool", "verify")}


def built_tasks(fleet: Fleet, digests, params) -> list[str]:
    """The cache entries of every content-addressed task a graph of `fleet` would run."""
    return sorted(cache_entry(cache_type, item["cache-name"], item["digest"])
                  for kind, types in CACHED_ITEMS.items()
                  for item in ITEMS[kind][1](fleet, digests, params)
                  for cache_type in types)


Items = Iterator[dict[str, Any]]


def _buildable(fleet: Fleet, params) -> Callable[[ImageKey], list[Target]]:
    environment = params.get("cib_environment")
    return lambda key: buildable_targets(key, fleet, environment)


def config_items(fleet: Fleet, digests, params) -> Items:
    yield {"name": "config"}


def pull_request_items(fleet: Fleet, digests, params) -> Items:
    number = params.get("cib_pull_request") or 0
    if number:
        yield {"name": "pull-request", "pull-request": number}


def promote_items(fleet: Fleet, digests, params) -> Items:
    request = params.get("cib_promote")
    if request:
        yield {"name": str(request.get("key", "")), **request}


def environment_items(fleet: Fleet, digests, params) -> Items:
    environment = params.get("cib_environment")
    if environment in fleet.environments:  # the decision's own: its deployment is the one read
        yield {"name": environment, "environment": environment}


def cloud_items(fleet: Fleet, digests, params) -> Items:
    environment = params.get("cib_environment")
    places = sorted({(t.platform, t.region) for k in fleet.keys.values() for t in k.targets
                     if not fleet.platform_disabled(t.platform, environment)})
    for platform, region in places:
        yield {"name": f"{platform}-{_slug(region)}", "platform": platform, "region": region}
    # worker-manager: the fleet's pools, and expired per-PR pools.
    yield {"name": "worker-manager", "platform": "taskcluster", "region": "",
           "pools": [*sorted(fleet.pools), f"{PR_POOL_DOMAIN}/*"]}


def disk_image_items(fleet: Fleet, digests, params) -> Items:
    buildable = _buildable(fleet, params)
    for key in fleet.keys.values():
        if any(needs_disk_image(key, t.platform) for t in buildable(key)):
            yield {"name": key.name, "key": key.name, "cache-name": key.name,
                   "digest": digests[key.name].disk}


def machine_image_items(fleet: Fleet, digests, params) -> Items:
    buildable = _buildable(fleet, params)
    for key in fleet.keys.values():
        for target in buildable(key):
            name = machine_image_name(key.name, target.id)
            yield {"name": name, "key": key.name, "cache-name": name,
                   "target": target.id, "platform": target.platform,
                   "region": target.region,
                   "digest": digests[key.name].machines[target.id],
                   "disk-image": needs_disk_image(key, target.platform)}


def image_test_items(fleet: Fleet, digests, params) -> Items:
    buildable = _buildable(fleet, params)
    environment = fleet.environments.get(params.get("cib_environment"))
    for key in fleet.keys.values():
        tests = key.image_tests(environment)
        if not tests:
            continue
        tested = tests_digest(tests)
        for target in buildable(key):
            name = machine_image_name(key.name, target.id)
            machine = digests[key.name].machines[target.id]
            yield {"name": name, "key": key.name, "cache-name": name,
                   "target": target.id, "platform": target.platform,
                   "region": target.region, "tests": [t.name for t in tests],
                   "digest": test_run_digest(machine, tested)}


def key_items(fleet: Fleet, digests, params) -> Items:
    buildable = _buildable(fleet, params)
    environment = fleet.environments.get(params.get("cib_environment"))
    for key in fleet.keys.values():
        targets = [t.id for t in buildable(key)]
        tests = key.image_tests(environment)
        if targets:  # the tag covers the images this graph can build
            yield {"name": key.name, "key": key.name, "cache-name": key.name,
                   "targets": targets,
                   "digest": tag_digest({t: digests[key.name].machines[t] for t in targets},
                                        tests_digest(tests) if tests else None)}


def pool_items(fleet: Fleet, digests, params) -> Items:
    number = params.get("cib_pull_request") or 0
    environment = params.get("cib_environment")
    for key in fleet.keys.values():
        for pool in key.pools:
            if pool_not_built(key, pool, fleet, environment):
                continue
            targets = pool_targets(key, pool)
            deploy = pr_pool_id(pool.id, number) if number else pool.id
            machines = {t: digests[key.name].machines[t] for t in targets}
            yield {"name": pool_name(pool.id), "key": key.name, "pool": pool.id,
                   "deploy-pool": deploy, "cache-name": _slug(deploy),
                   # the pool's definition as written: any edit of it is a new deploy
                   "digest": pool_digest(pool.raw, machines, deploy),
                   "platform": pool.platform, "provider": pool.provider,
                   "targets": targets,
                   "os": key.os_family}


# `cib-items` -> the schema of one item and its items from (fleet, digests, parameters).
ITEMS: dict[str, tuple[type[Schema], Callable[[Fleet, Any, Any], Items]]] = {
    "config": (ConfigItem, config_items),
    "pull-request": (PullRequestItem, pull_request_items),
    "promote": (PromoteItem, promote_items),
    "environment": (EnvironmentItem, environment_items),
    "clouds": (CloudItem, cloud_items),
    "disk-images": (DiskImageItem, disk_image_items),
    "machine-images": (MachineImageItem, machine_image_items),
    "image-tests": (ImageTestItem, image_test_items),
    "keys": (KeyItem, key_items),
    "pools": (PoolItem, pool_items),
}

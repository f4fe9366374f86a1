"""One loader for every cib kind: turns the fleet into the inputs of the kind's transforms.

`cib-items` in kind.yml says what one input is: the config (lint), a cloud region (purge),
a disk image, a machine image (key and target), a key (tag) or a pool (worker-pool, verify).

Targets on clouds cib does not build machine images on yet (`selection.not_built`) are left
out: no machine image, no disk image or tag for them alone, and pools running their images get
no deploy or verification (`selection.pool_not_built`). The graph holds no task that could only
fail; the `cib` target method lists what was left out, and why, through the selection.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from taskgraph.config import load_graph_config

from ..config.model import Fleet, ImageKey, Pool, Target
from ..digests import pool_digest, tag_digest, test_run_digest, tests_digest
from ..naming import PR_POOL_DOMAIN, pr_pool_id
from ..selection import not_built, pool_not_built
from . import fleet as graph_fleet
from .task_env import graph_env


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
                  for item in _items(kind, fleet, digests, params)
                  for cache_type in types)


def _items(kind: str, fleet: Fleet, digests, params) -> Iterator[dict[str, Any]]:
    number = params.get("cib_pull_request") or 0
    environment = params.get("cib_environment")

    def buildable(key: ImageKey) -> list[Target]:
        return buildable_targets(key, fleet, environment)

    if kind == "pull-request":
        if number:
            yield {"name": "pull-request", "pull-request": number}
    elif kind == "config":
        yield {"name": "config"}
    elif kind == "clouds":
        places = sorted({(t.platform, t.region) for k in fleet.keys.values() for t in k.targets
                         if not fleet.platform_disabled(t.platform, environment)})
        for platform, region in places:
            yield {"name": f"{platform}-{_slug(region)}", "platform": platform, "region": region}
        # worker-manager: the fleet's pools, and expired per-PR pools.
        yield {"name": "worker-manager", "platform": "taskcluster", "region": "",
               "pools": [*sorted(fleet.pools), f"{PR_POOL_DOMAIN}/*"]}
    elif kind == "disk-images":
        for key in fleet.keys.values():
            if any(needs_disk_image(key, t.platform) for t in buildable(key)):
                yield {"name": key.name, "key": key.name, "cache-name": key.name,
                       "digest": digests[key.name].disk}
    elif kind == "machine-images":
        for key in fleet.keys.values():
            for target in buildable(key):
                name = machine_image_name(key.name, target.id)
                yield {"name": name, "key": key.name, "cache-name": name,
                       "target": target.id, "platform": target.platform,
                       "region": target.region,
                       "digest": digests[key.name].machines[target.id],
                       "disk-image": needs_disk_image(key, target.platform)}
    elif kind == "image-tests":
        for key in fleet.keys.values():
            tests = key.image_tests(fleet.environments.get(environment))
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
    elif kind == "keys":
        for key in fleet.keys.values():
            targets = [t.id for t in buildable(key)]
            tests = key.image_tests(fleet.environments.get(environment))
            if targets:  # the tag covers the images this graph can build
                yield {"name": key.name, "key": key.name, "cache-name": key.name,
                       "targets": targets,
                       "digest": tag_digest({t: digests[key.name].machines[t]
                                             for t in targets},
                                            tests_digest(tests) if tests else None)}
    elif kind == "pools":
        for key in fleet.keys.values():
            for pool in key.pools:
                if pool_not_built(key, pool, fleet, environment):
                    continue
                targets = pool_targets(key, pool)
                deploy = pr_pool_id(pool.id, number) if number else pool.id
                machines = {t: digests[key.name].machines[t] for t in targets}
                yield {"name": pool_name(pool.id), "key": key.name, "pool": pool.id,
                       "deploy-pool": deploy, "cache-name": _slug(deploy),
                       "digest": pool_digest(pool.raw, machines, deploy),
                       "platform": pool.platform, "provider": pool.raw["provider"],
                       "targets": targets,
                       "os": key.os_family}
    else:
        raise ValueError(f"unknown cib-items {kind!r}")


def loader(kind, path, config, params, loaded_tasks, write_artifacts=False):
    """taskgraph loader: the fleet's items for this kind, one input each."""
    # path is taskcluster/kinds/<kind>; the graph config is taskcluster/config.yml.
    graph_config = _graph_config(str(Path(path).parents[1]))
    if config["cib-items"] == "task-env":
        # what the environment is built from, at the revision the graph is for: the
        # repository's source, or the installed cib-decision (`package`)
        digest, package = graph_env(graph_fleet.repo_root(graph_config), params.get("head_rev"))
        yield {"name": "cib", "cache-name": "cib", "digest": digest, "package": package}
        return
    loaded = graph_fleet.load(graph_fleet.config_dir(graph_config))
    yield from _items(config["cib-items"], loaded.fleet, loaded.digests, params)


@cache
def _graph_config(root_dir: str):
    return load_graph_config(root_dir)

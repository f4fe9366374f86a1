"""What a pool deploy is made of: the request, the rendered definition and the image each
location runs; finding a pool and the target serving each of its locations; reading
worker-manager's shape of a pool back (the images it runs, the fields a caller sets, a per-PR
pool's recorded expiry)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config.model import Environment, Fleet, ImageKey, Pool, Target
from ..errors import CibError
from ..manifest import ReleaseImage, parse_time
from ..naming import pr_pool_id
from ..suggest import closest

PROVIDER_TYPES = {"azure": "azure", "amazon": "aws", "google": "google"}
NULL_PROVIDER = "null-provider"
# The fields of a definition a caller sets; everything else in `workerPool` is the server's.
DEFINITION_FIELDS = ("providerId", "description", "config", "owner", "emailOnError")
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
    """worker-manager's provider type for the pool: from its cloud (`ImageKey.pool_platform`:
    its platform, else its key's only one)."""
    platform = key.pool_platform(pool)
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


def comparable(pool: dict[str, Any] | None) -> dict[str, Any] | None:
    """The caller-set fields of a pool as worker-manager returns it (None for no pool)."""
    return None if pool is None else {k: pool.get(k) for k in DEFINITION_FIELDS}


def expiry(pool_description: str) -> datetime | None:
    """The `cib-expires:` time recorded in a description, or None."""
    match = EXPIRES_LINE.search(pool_description or "")
    if not match:
        return None
    try:
        return parse_time(match.group(1))
    except ValueError:
        return None

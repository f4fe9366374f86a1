"""Fleets, images and records for the pool tests (test helper)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from cib_decision import manifest, pools
from cib_decision.config import DirectorySource, Fleet, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.manifest import ReleaseImage

from .conftest import CONFIG_DIR

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUILD_TASK = "fN1SbArXTPSVFNUvaOlinQ"
WHEN = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


@cache
def fleet(directory: str = str(CONFIG_DIR)) -> Fleet:
    return load_fleet(DirectorySource(directory))


def image_id(platform: str, group: str | None, name: str, build: int = 0) -> str:
    """A cloud's id for image `name` (`build` makes ids of different builds differ)."""
    if platform == "azure":
        return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/"
                f"Microsoft.Compute/images/{name}")
    if platform == "amazon":
        return f"ami-{build:017x}"
    return f"projects/example-cib-images/global/images/{name}"


def images(pool_id: str, regions: set[str] | None = None, build: int = 0,
           directory: str = str(CONFIG_DIR)) -> list[ReleaseImage]:
    """One image per target of the pool's key (only in `regions` when given). `build` gives
    the images of another build: other machine digests, names and ids."""
    the_fleet = fleet(directory)
    key, _ = pools.find_pool(the_fleet, pool_id)
    digests = fleet_digests(the_fleet)[key.name]
    result = []
    for target in key.targets:
        if regions is not None and target.region not in regions:
            continue
        machine = digests.machines[target.id]
        if build:
            machine = f"{build:012x}{machine[12:]}"
        name = f"{key.name}-{machine[:12]}"
        result.append(ReleaseImage(target.platform, target.region, target.id,
                                   image_id(target.platform, target.group, name, build + 1),
                                   name, machine, BUILD_TASK))
    return result


def release_of(pool_id: str, build: int = 0, regions: set[str] | None = None
               ) -> manifest.Release:
    """A sealed release of the pool's key."""
    key, _ = pools.find_pool(fleet(), pool_id)
    digests = fleet_digests(fleet())[key.name]
    return manifest.release_record(key.name, disk_digest=digests.disk, disk_sha256="cd" * 32,
                                   config_commit=COMMIT, created=WHEN,
                                   images=images(pool_id, regions, build))


def request(pool_id: str, environment: str = "staging", pull_request: int | None = None,
            expires: datetime | None = None, directory: str = str(CONFIG_DIR)
            ) -> pools.PoolRequest:
    the_fleet = fleet(directory)
    key, pool = pools.find_pool(the_fleet, pool_id)
    return pools.PoolRequest(key, pool, the_fleet.environments[environment], pull_request,
                             expires)

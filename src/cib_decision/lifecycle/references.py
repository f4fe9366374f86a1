"""What refers to machine images, so garbage collection never deletes them.

A reference source is a callable that returns `gc.Reference`s, or raises when it cannot tell:
garbage collection gathers every source first and deletes nothing when any of them fails
(`gather`). The sources:

- `pool_references`: every worker pool's current definition in one environment (worker-
  manager's `listWorkerPools`, every page). Each launch config's image is read where the
  provider keeps it (AWS `launchConfig.ImageId`, Azure `storageProfile.imageReference.id`,
  Google `disks[].initializeParams.sourceImage`) and, to be safe from shapes we do not
  render, any other string in the definition that has the form of an AMI id, an Azure image
  resource id or a Google image path (`projects/<p>/global/images/<n>`, a family's too)
  counts too. A deleted pool (`null-provider`) has no launch configs left and
  refers to nothing; its workers run on (deleting an image stops no VM or instance made
  from it).
- `pointer_source`: the releases one environment's pointers name (`pointers.
  referenced_releases`: each key's and pool's current release and each pool's newest rollback
  spares), read from the tasks that hold their records (`public/release.json`, verified);
  every image of such a release counts. A pointer whose record cannot be read fails the
  source: without it we cannot know its images.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from taskcluster.exceptions import (
    TaskclusterFailure,
)

from ..errors import CibError
from ..manifest import Release
from ..pools import PROVIDER_TYPES, image_of
from ..tc import Index, Queue, WorkerManager, failure
from . import pointers
from .gc import Reference

ReferenceSource = Callable[[], Iterable[Reference]]

# Image ids in a definition outside the fields we render: AMIs, Azure image resources and
# Google image paths (of a self link too: `gc.normalise_id` reads both alike).
_ID_FORMS = re.compile(
    r"\bami-[0-9a-f]{8,17}\b"
    r"|/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/Microsoft\.Compute/"
    r"(?:images/[^/\s]+|galleries/[^/\s]+/images/[^/\s]+(?:/versions/[^/\s]+)?)"
    r"|\bprojects/[a-z][-a-z0-9.:]*/global/images/(?:family/)?[a-z](?:[-a-z0-9]*[a-z0-9])?",
    re.IGNORECASE)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def pool_image_ids(pool: dict[str, Any]) -> set[str]:
    """Every image id the definition of `pool` (as worker-manager returns it) refers to."""
    config = pool.get("config") if isinstance(pool, dict) else None
    if not isinstance(config, dict):
        return set()
    found = set()
    for launch_config in config.get("launchConfigs") or ():
        if not isinstance(launch_config, dict):
            continue
        for provider in PROVIDER_TYPES.values():
            image = image_of(provider, launch_config)
            if image is not None:
                found.add(image.id)
    for text in _strings(config):
        found.update(match.group(0) for match in _ID_FORMS.finditer(text))
    return found


def _listing_error(environment: str, page: int, exc: TaskclusterFailure) -> CibError:
    return failure("worker-manager", f"list the worker pools of {environment} (page {page})",
                   exc)


def list_pool_definitions(wm: WorkerManager, environment: str, page_size: int | None = None
                          ) -> list[dict[str, Any]]:
    """Every worker pool of the deployment, following `continuationToken` to the last page.
    A page that fails (after the client's own retries) raises: TransientError (exit 75) for
    a server error or a lost connection, CibError (exit 2) otherwise."""
    from ..tc import pages

    return list(pages(lambda query: wm.listWorkerPools(query=query), "workerPools",
                      query={"limit": str(page_size)} if page_size else None,
                      fail=lambda exc, page: _listing_error(environment, page, exc)))


def pool_references(pools: Iterable[dict[str, Any]], environment: str) -> list[Reference]:
    """A reference per image of each pool: `pool <id> (<environment>)`."""
    return [Reference(image_id, f"pool {pool.get('workerPoolId', '?')} ({environment})")
            for pool in pools for image_id in sorted(pool_image_ids(pool))]


def worker_pool_source(wm: WorkerManager, environment: str, page_size: int | None = None
                       ) -> ReferenceSource:
    """The source of the references of every pool of one environment's worker-manager."""
    return lambda: pool_references(list_pool_definitions(wm, environment, page_size),
                                   environment)


def release_references(releases: Iterable[Release], reason: str) -> list[Reference]:
    """A reference per image of each release: `<reason>` (`pointer staging/win11-64`)."""
    return [Reference(image.id, f"{reason}: release {release.sha256[:12]} of {release.key}")
            for release in releases for image in release.images]


def pointer_source(index: Index, queue: Queue, environment: str,
                   keep_history: int = pointers.DEFAULT_KEEP_HISTORY) -> ReferenceSource:
    """The source of the references of one environment's release pointers and rollback
    spares (`index` and `queue` of the deployment its pointers are in)."""
    def references() -> list[Reference]:
        releases: dict[tuple[str, str], Release] = {}
        found = []
        for pointer in pointers.referenced_releases(index, [environment], keep_history):
            where = (pointer.task_id, pointer.sha256)
            if where not in releases:
                releases[where] = pointers.read_release(queue, pointers.ReleaseRef(
                    pointer.key, pointer.sha256, pointer.task_id))
            found += release_references([releases[where]], f"{pointer.why} in {environment}")
        return found
    return references


def gather(sources: Iterable[ReferenceSource]) -> list[Reference]:
    """Every reference of every source; the first source that raises stops it (the caller
    then deletes nothing)."""
    return [reference for source in sources for reference in source()]

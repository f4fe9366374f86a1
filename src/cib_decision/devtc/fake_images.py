"""Stand-in machine images for local runs (`scripts/reliability`, tests): what a key's
machine-image tasks would report, with ids in each cloud's real form but no cloud behind them,
and for a key with smoke tests, their passing outcome as its test-image tasks would report it."""

from __future__ import annotations

import hashlib
from typing import Any

from ..config import Fleet, ImageKey
from ..digests import fleet_digests, tests_digest
from ..manifest import ReleaseImage

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
BUILD_TASK = "fN1SbArXTPSVFNUvaOlinQ"


def image_id(platform: str, group: str | None, name: str, build: int = 0) -> str:
    """A cloud's id for image `name` (`build` makes ids of different builds differ)."""
    if platform == "azure":
        return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/"
                f"Microsoft.Compute/images/{name}")
    if platform == "amazon":
        return f"ami-{build:017x}"
    return f"projects/example-cib-images/global/images/{name}"


def key_images(fleet: Fleet, key: ImageKey, regions: set[str] | None = None, build: int = 0,
               build_task: str = BUILD_TASK) -> list[ReleaseImage]:
    """One image per target of `key` (only in `regions` when given). `build` gives the images
    of another build: other machine digests, names and ids."""
    digests = fleet_digests(fleet)[key.name]
    tested = passed_tests(fleet, key, build_task)
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
                                   name, machine, build_task, tests=tested))
    return result


def passed_tests(fleet: Fleet, key: ImageKey, task_id: str) -> dict[str, Any] | None:
    """What a release's image says of the key's smoke tests when all passed (those of the first
    environment that gives the key any), None for a key without tests."""
    for environment in fleet.environments.values():
        tests = key.image_tests(environment)
        if tests:
            empty = hashlib.sha256(b"").hexdigest()
            return {"passed": True, "tests_digest": tests_digest(tests), "task_id": task_id,
                    "results": [{"name": t.name, "passed": True, "exit_code": 0,
                                 "output_sha256": empty} for t in tests]}
    return None

"""Stand-in machine images for local runs (`scripts/reliability`, tests): what a key's
machine-image tasks would report, with ids in each cloud's real form but no cloud behind them."""

from __future__ import annotations

from ..config import Fleet, ImageKey
from ..digests import fleet_digests
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
                                   name, machine, build_task))
    return result

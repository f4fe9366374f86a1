"""Which of the images pools run and releases name still exist in their clouds (adapter).

`cib drift` asks each cloud about exactly the images it was told of (`Wanted`), through the
adapters the builders, gc and promote use, and gets back the ids that exist. Every question is
answered in full or the whole read fails (exit 2, or 75 when the cloud may answer later):
drift never reports an image gone because a listing stopped half-way.

One entry of `READERS` per cloud platform (the config's name: `amazon`, `azure`, `google`);
`PROVIDER_PLATFORMS` maps worker-manager's provider types onto them. A platform without a
reader is not asked (`cib drift` says so in its log) and nothing of it is reported gone.

- amazon: `describe_images` filtered on the wanted ids, every page, per region (images the
  account can see: its own, shared and public ones);
- azure: a GET of each wanted ARM id (managed images, gallery images and versions);
- google: a GET of each wanted image (`projects/<project>/global/images/<name>`, or the full
  URL a launch config's `sourceImage` may hold) in the project its id names.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .lifecycle.gc import normalise_id

# worker-manager provider type -> the config's platform
PROVIDER_PLATFORMS = {"aws": "amazon", "azure": "azure", "google": "google"}
# EC2 takes at most 200 values per filter
AWS_FILTER_VALUES = 200


@dataclass(frozen=True)
class Wanted:
    """An image something names: a pool's launch config or a release."""

    platform: str
    region: str
    id: str


Reader = Callable[[list[Wanted]], set[str]]  # the wanted images of one platform -> ids found


def aws_reader() -> Reader:
    """The AMIs of `wanted` that exist, asked per region in one session."""
    from .clouds.aws import EC2, aws_errors

    clients: dict[str, EC2] = {}

    def ec2(region: str) -> EC2:
        if region not in clients:  # one session: botocore reads EC2's model once
            first = next(iter(clients.values()), None)
            clients[region] = first.in_region(region) if first else EC2(region)
        return clients[region]

    def read(wanted: list[Wanted]) -> set[str]:
        by_region: dict[str, set[str]] = defaultdict(set)
        for image in wanted:
            by_region[image.region].add(image.id)
        found: set[str] = set()
        for region, ids in sorted(by_region.items()):
            ordered = sorted(ids)
            client = ec2(region).client
            with aws_errors(f"looking up {len(ordered)} images in {region}"):
                for start in range(0, len(ordered), AWS_FILTER_VALUES):
                    values = ordered[start:start + AWS_FILTER_VALUES]
                    pages = client.get_paginator("describe_images").paginate(
                        Filters=[{"Name": "image-id", "Values": values}],
                        IncludeDeprecated=True)
                    found.update(i["ImageId"] for page in pages
                                 for i in page.get("Images") or ())
        return found

    return read


def azure_reader() -> Reader:
    """The ARM ids of `wanted` that exist (a GET each; an id that is no image cib manages
    does not exist)."""
    from .clouds.azure import Azure, parse_id
    from .errors import CibError

    azure = Azure.from_environment()

    def read(wanted: list[Wanted]) -> set[str]:
        found = set()
        for image_id in sorted({w.id for w in wanted}):
            try:
                kind, group, names = parse_id(image_id)
            except CibError:
                continue
            if azure.get(kind, group, *names) is not None:
                found.add(image_id)
        return found

    return read


GOOGLE_IMAGE = re.compile(r"(?:^|/)projects/([^/]+)/global/images/([^/]+)$")


def google_reader() -> Reader:
    """The Compute Engine images of `wanted` that exist (a GET each, in the project its id
    names; an id of another form does not exist)."""
    from .clouds.google import Google

    google = Google.from_environment()

    def read(wanted: list[Wanted]) -> set[str]:
        found = set()
        for image_id in sorted({w.id for w in wanted}):
            named = GOOGLE_IMAGE.search(image_id)
            if named and google.image(named[1], named[2]) is not None:
                found.add(image_id)
        return found

    return read


# The clouds cib drift reads; adding one is one entry (its reader, built when first needed).
READERS: dict[str, Callable[[], Reader]] = {
    "amazon": aws_reader,
    "azure": azure_reader,
    "google": google_reader,
}


def existing(wanted: Iterable[Wanted], log: Callable[[str], None] = lambda line: None,
             readers: dict[str, Callable[[], Reader]] | None = None) -> dict[str, set[str]]:
    """Per platform that has a reader, the normalised ids (`gc.normalise_id`) of the wanted
    images that exist; platforms without one are left out (and logged)."""
    readers = READERS if readers is None else readers
    by_platform: dict[str, list[Wanted]] = defaultdict(list)
    for image in wanted:
        by_platform[image.platform].append(image)
    result: dict[str, set[str]] = {}
    for platform, images in sorted(by_platform.items()):
        if platform not in readers:
            log(f"{platform}: {len(images)} image{'s' if len(images) != 1 else ''} not "
                f"checked (cib drift does not read {platform} yet)")
            continue
        found = readers[platform]()(images)
        result[platform] = {normalise_id(i) for i in found}
        log(f"{platform}: {len(result[platform])} of {len({w.id for w in images})} images "
            "exist")
    return result

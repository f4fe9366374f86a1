"""Garbage collection of old machine images: which to keep and which to delete, and why (pure).

The input is every image a cloud listed in the regions collected (`Image`, read from the
cloud's own description and our tags), the references to images that must stay (`Reference`:
worker pools' current definitions, environment pointers, rollback spares) and how many of the
newest images to keep per key, environment and region. The output is a `Plan`: one `Decision`
per image, with its reason, and for each deleted AWS image the snapshots that go with it.

Rules, in this order (the first that applies decides):

1. an image without both `cib:key` and `cib:machine-digest` is not ours: never touched; nor,
   when the run is narrowed to some environments, one tagged for another;
2. an image something refers to is kept (every reference is named);
3. an image still being made (`pending`) is kept: a build or a copy is under way;
4. an image whose creation time is unknown is kept;
5. the newest `keep` available images of each cloud, region, key and environment are kept;
6. an image younger than `min_age` is kept: a graph may be about to deploy it;
7. everything else is deleted.

A deleted image's snapshots are deleted with it, except a snapshot that another image of the
region (kept, foreign or deleted later) is also made of. Image ids are compared case-
insensitively (Azure resource ids are), a Google self link as its `projects/...` path; an
Azure gallery image version is referenced too when a reference names its image definition
(`.../galleries/<g>/images/<i>`, which runs the latest version), and an image by any of its
`aliases` (a Google image by its project-relative `global/images/<name>`, and the newest of a
family by the family's `.../images/family/<f>`, which boots it). Images of one cloud are
grouped per `account` too (a Google project: each holds its own copy of an image).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..config import Fleet, normalise_region

KEY_TAG = "cib:key"
BUILD_TASK_TAG = "cib:build-task-id"
DIGEST_TAG = "cib:machine-digest"
ENVIRONMENT_TAG = "cib:environment"
OUR_TAGS = (KEY_TAG, DIGEST_TAG)

KEEP, DELETE, IGNORE = "keep", "delete", "ignore"
AVAILABLE, PENDING, FAILED = "available", "pending", "failed"
# A Compute self link (`https://compute.googleapis.com/compute/v1/projects/...`) compares as the
# `projects/...` path cib records.
_GOOGLE_LINK = re.compile(r"^https?://[^/]+/compute/[a-z0-9]+/(?=projects/)", re.IGNORECASE)


@dataclass(frozen=True)
class Image:
    """One image as a cloud listed it: where it is, what the cloud calls it, its tags, when it
    was made, its state (`available`, `pending` or `failed`, as the adapter maps the cloud's
    own), on AWS the EBS snapshots it is made of, other ids a reference may name it by
    (`aliases`) and the `account` holding it where a cloud's regions do not separate its
    copies (a Google project)."""

    cloud: str
    region: str
    id: str
    name: str
    created: datetime | None
    tags: tuple[tuple[str, str], ...] = ()
    state: str = AVAILABLE
    snapshots: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    account: str = ""

    @property
    def tag(self) -> Mapping[str, str]:
        return dict(self.tags)

    @property
    def ours(self) -> bool:
        """Carries both tags a cib build sets (`cib:key`, `cib:machine-digest`)."""
        return all(self.tag.get(name) for name in OUR_TAGS)

    @property
    def key(self) -> str | None:
        return self.tag.get(KEY_TAG)

    @property
    def environment(self) -> str:
        return self.tag.get(ENVIRONMENT_TAG) or "unknown"


@dataclass(frozen=True)
class Reference:
    """Something that needs image `image_id` to stay, and what it is (`pool gecko-t/win11
    (production)`, `pointer staging/win11-64`, ...)."""

    image_id: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """What happens to one image (`keep`, `delete`, or `ignore` for images that are not ours)
    and why; `snapshots` are deleted with it."""

    image: Image
    action: str
    reason: str
    snapshots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Every image's decision, in the order: cloud, region, key, newest first."""

    decisions: tuple[Decision, ...] = field(default_factory=tuple)

    def of(self, action: str) -> list[Decision]:
        return [d for d in self.decisions if d.action == action]

    @property
    def deleted(self) -> list[Decision]:
        return self.of(DELETE)

    @property
    def kept(self) -> list[Decision]:
        return self.of(KEEP)


def target_regions(fleet: Fleet, platform: str) -> list[str]:
    """Every region of the fleet's targets on `platform` and of their `copies`."""
    found = set()
    for key in fleet.keys.values():
        for target in key.targets:
            if target.platform == platform:
                found.add(normalise_region(target.region))
                found.update(target.copies)
    return sorted(found)


def with_created(images: Iterable[Image], created_of: Callable[[Image], datetime | None]
                 ) -> list[Image]:
    """`images`, each of ours without a creation time given the one `created_of` finds (its
    build task's, say), if any."""
    return [replace(image, created=created_of(image))
            if image.ours and image.created is None else image for image in images]


def normalise_id(image_id: str) -> str:
    """The form image ids are compared in: lower case, no trailing slash, a Google self link
    as its `projects/...` path."""
    return _GOOGLE_LINK.sub("", image_id.strip().rstrip("/")).lower()


def _lookup_ids(image: Image) -> list[str]:
    """The ids a reference may name `image` by: its own, its aliases, and for an Azure
    gallery image version its image definition's."""
    own = normalise_id(image.id)
    ids = [own, *(normalise_id(a) for a in image.aliases)]
    head, marker, _ = own.rpartition("/versions/")
    if marker and "/galleries/" in head:
        ids.append(head)
    return ids


def reference_index(references: Iterable[Reference]) -> dict[str, list[str]]:
    """`{normalised image id: [reasons]}`, each reason once, in the order given."""
    index: dict[str, list[str]] = defaultdict(list)
    for reference in references:
        reasons = index[normalise_id(reference.image_id)]
        if reference.reason not in reasons:
            reasons.append(reference.reason)
    return dict(index)


def _newest_first(image: Image) -> tuple:
    # No creation time sorts as newest; ties by name (revisions `-r<N>-` sort later) and id.
    return (image.created is not None, image.created or datetime.min, image.name, image.id)


def plan(images: Iterable[Image], references: Iterable[Reference], *, keep: int,
         now: datetime, min_age: timedelta = timedelta(0),
         environments: Collection[str] | None = None) -> Plan:
    """Decide, for every image, keep, delete or ignore (see the module's rules); with
    `environments`, only our images tagged for one of them are collected."""
    if keep < 0:
        raise ValueError("keep must not be negative")
    index = reference_index(references)
    images = list(images)
    groups: dict[tuple[str, str, str, str | None, str], list[Image]] = defaultdict(list)
    for image in images:
        if image.ours and image.state == AVAILABLE:
            groups[(image.cloud, image.account, image.region, image.key,
                    image.environment)].append(image)
    newest: set[tuple[str, str, str]] = set()
    for members in groups.values():
        members.sort(key=_newest_first, reverse=True)
        newest.update((i.cloud, i.region, i.id) for i in members[:keep])

    decisions: dict[tuple[str, str, str], tuple[str, str]] = {}
    for image in images:
        where = (image.cloud, image.region, image.id)
        if image.ours and environments and image.environment not in environments:
            decisions[where] = (IGNORE, f"built for {image.environment}: this run collects "
                                        f"{', '.join(sorted(environments))} only")
        else:
            decisions[where] = _decide(image, index, where in newest, keep, now, min_age)

    # A snapshot goes with its image unless an image that stays is made of it too.
    staying: dict[tuple[str, str], set[str]] = defaultdict(set)
    for image in images:
        if decisions[(image.cloud, image.region, image.id)][0] != DELETE:
            staying[(image.cloud, image.region)].update(image.snapshots)
    ordered = sorted(images, key=_newest_first, reverse=True)
    ordered.sort(key=lambda i: (i.cloud, i.region, i.key or "", i.environment))
    result = []
    for image in ordered:
        action, reason = decisions[(image.cloud, image.region, image.id)]
        snapshots: tuple[str, ...] = ()
        if action == DELETE:
            shared = [s for s in image.snapshots if s in staying[(image.cloud, image.region)]]
            snapshots = tuple(s for s in image.snapshots if s not in shared)
            if shared:
                reason += (f"; keeping snapshot{'s' if len(shared) > 1 else ''} "
                           f"{', '.join(shared)}: an image that stays is made of it")
        result.append(Decision(image, action, reason, snapshots))
    return Plan(tuple(result))


def _decide(image: Image, index: Mapping[str, list[str]], among_newest: bool, keep: int,
            now: datetime, min_age: timedelta) -> tuple[str, str]:
    if not image.ours:
        return IGNORE, "not ours (no cib:key and cib:machine-digest tags): never touched"
    reasons = [r for i in _lookup_ids(image) for r in index.get(i, ())]
    if reasons:
        return KEEP, "referenced by " + "; ".join(reasons)
    if image.state == PENDING:
        return KEEP, "still being made (pending)"
    if image.created is None:
        return KEEP, "creation time unknown"
    group = f"{image.key} in {image.environment}" + (f" ({image.account})" if image.account
                                                      else "")
    if among_newest:
        return KEEP, f"among the newest {keep} of {group}"
    age = now - image.created
    if age < min_age:
        return KEEP, f"younger than the minimum age {min_age} (made {_ago(age)} ago)"
    if image.state != AVAILABLE:
        return DELETE, f"{image.state} and unreferenced"
    return DELETE, f"unreferenced and not among the newest {keep} of {group}"


def _ago(age: timedelta) -> str:
    hours = int(age.total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"

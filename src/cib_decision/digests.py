"""Content digests: SHA-256 over the canonical content of exactly the inputs of an image.

The disk digest of a key covers its `image` and `iso` sections and the entries of the shared
sysprep inputs that apply to it. The machine digest of a target covers the disk digest and the
target's `bootstrap` and `tag`. Content is hashed after parsing, as canonical JSON, so comments,
key order, indentation and YAML anchors change nothing; pool definitions are not an input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from .config.model import SHARED_FILES, Fleet, ImageKey, ImageTest, SharedInputs, Target

# Bump when what a digest covers changes, so that every image is rebuilt once under the new rule.
DIGEST_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """The one serialisation digests are computed over: sorted keys, no white space, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_of(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _matches(criteria: dict[str, Any] | None, key: ImageKey) -> bool:
    if not criteria:
        return True
    image = key.image
    checks = {
        "cloud": lambda clouds: bool(key.platforms & set(clouds)),
        "os": lambda values: image.get("os") in values,
        "architecture": lambda values: image.get("architecture") in values,
        "gpu": lambda values: bool(image.get("gpu", False)) in values,
    }
    return all(check(criteria[name]) for name, check in checks.items() if name in criteria)


def applicable_shared_inputs(key: ImageKey, shared: SharedInputs) -> dict[str, Any]:
    """The part of each shared sysprep input that applies to `key`, by file name.

    List files keep the entries whose `target` criteria match the key's os, architecture,
    gpu and clouds (its targets' platforms); product keys keep the key for the image's os and
    edition. Keys alike in those share one result (do not modify it).
    """
    image = key.image
    alike = (image.get("os"), image.get("architecture"), bool(image.get("gpu", False)),
             key.platforms, image.get("edition"))
    try:
        by_criteria = _applicable.setdefault(shared, {})
        result = by_criteria.get(alike)
    except TypeError:  # a value that cannot be a dict key (not valid config): no sharing
        return _applicable_shared_inputs(key, shared)
    if result is None:
        result = by_criteria[alike] = _applicable_shared_inputs(key, shared)
    return result


_applicable: WeakKeyDictionary[SharedInputs, dict[tuple, dict[str, Any]]] = WeakKeyDictionary()


def _applicable_shared_inputs(key: ImageKey, shared: SharedInputs) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in SHARED_FILES:
        entries = shared.entries(name)
        if name == "product-keys":
            editions = entries.get(key.image.get("os")) or {}
            edition = key.image.get("edition")
            result[name] = editions.get(edition) if edition is not None else None
        else:
            result[name] = [e for e in entries if _matches(e.get("target"), key)]
    return result


def disk_inputs(key: ImageKey, shared: SharedInputs) -> dict[str, Any]:
    """Everything the disk image of `key` is made from."""
    return {"v": DIGEST_VERSION, "image": key.image, "iso": key.iso,
            "shared": applicable_shared_inputs(key, shared)}


def machine_inputs(disk_digest: str, target: Target) -> dict[str, Any]:
    """Everything the machine image of one target is made from: its `bootstrap` and `tag`
    as written (`raw`: any edit of them is a new image, and the digests of the bundled fleet
    are pinned)."""
    return {"v": DIGEST_VERSION, "disk": disk_digest,
            "bootstrap": target.raw.get("bootstrap"), "tag": target.raw.get("tag")}


def disk_digest(key: ImageKey, shared: SharedInputs) -> str:
    """Digest of the disk image of `key`."""
    return sha256_of(disk_inputs(key, shared))


def machine_digest(disk: str, target: Target) -> str:
    """Digest of the machine image built for `target` from the disk image with digest `disk`."""
    return sha256_of(machine_inputs(disk, target))


def tag_digest(machines: dict[str, str], tests: str | None = None) -> str:
    """Digest of tagging a key's images: the machine digests it tags, and the digest of the
    smoke tests its release records (keys with tests only: a changed test makes a new
    release of the same images)."""
    if tests is None:
        return sha256_of({"v": DIGEST_VERSION, "tag": machines})
    return sha256_of({"v": DIGEST_VERSION, "tag": machines, "tests": tests})


def tests_digest(tests: Iterable[ImageTest]) -> str:
    """Digest of a key's smoke tests, as they run (not an input of any image: a changed test
    runs again on the same images)."""
    return sha256_of({"v": DIGEST_VERSION, "tests": [t.to_json() for t in tests]})


def test_run_digest(machine: str, tests: str) -> str:
    """Digest of one test run: these tests on the image of this machine digest."""
    return sha256_of({"v": DIGEST_VERSION, "machine": machine, "tests": tests})


def pool_digest(pool_definition: dict[str, Any], machines: dict[str, str], deploy_as: str) -> str:
    """Digest of one pool deploy: the pool's definition, the machine digests of the images it
    runs (by target) and the pool it is deployed as. A deploy with the same digest was done."""
    return sha256_of({"v": DIGEST_VERSION, "pool": pool_definition, "images": machines,
                      "as": deploy_as})


@dataclass(frozen=True)
class KeyDigests:
    """The digests of one key: its disk image and each target's machine image."""

    key: str
    disk: str
    machines: dict[str, str]


def key_digests(key: ImageKey, shared: SharedInputs) -> KeyDigests:
    """Digests of one key and all its targets, computed once per key and shared inputs: the
    loader, the change report and the image commands all ask (do not modify the result)."""
    remembered = _key_digests.get(key)
    if remembered is not None and remembered[0] is shared:
        return remembered[1]
    disk = disk_digest(key, shared)
    digests = KeyDigests(key.name, disk, {t.id: machine_digest(disk, t) for t in key.targets})
    _key_digests[key] = (shared, digests)
    return digests


_key_digests: WeakKeyDictionary[ImageKey, tuple[SharedInputs, KeyDigests]] = WeakKeyDictionary()


def fleet_digests(fleet: Fleet, known: tuple[Fleet, dict[str, KeyDigests]] | None = None
                  ) -> dict[str, KeyDigests]:
    """Digests of every key of the fleet, by key name. With `known` (another fleet and its
    digests: the head's, when a plan asks for its base's), a key whose name and document are
    the same there, under the same shared inputs, takes its digests from there: an ImageKey
    is built from its name and document alone, and its digests from it and the shared inputs
    (a push that changes one key of 1000 computes one key's)."""
    if known is None:
        return {name: key_digests(key, fleet.shared) for name, key in fleet.keys.items()}
    other, digests = known
    same_shared = other.shared.files == fleet.shared.files
    found: dict[str, KeyDigests] = {}
    for name, key in fleet.keys.items():
        twin = other.keys.get(name) if same_shared else None
        found[name] = (digests[name] if twin is not None and name in digests
                       and twin.raw == key.raw else key_digests(key, fleet.shared))
    return found

"""The one place that names images and pools. Builders, existence checks and pool deploys
all call these functions, so a name computed anywhere finds the same image."""

from __future__ import annotations

import hashlib
import re

DIGEST_CHARS = 12
# The strictest cloud rule wins: GCP image names are [a-z]([-a-z0-9]*[a-z0-9])?, at most 63.
MAX_IMAGE_NAME = 63


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug if slug[:1].isalpha() else f"k{slug}"


def image_name(key: str, digest: str, *, kind: str = "machine",
               pull_request: int | None = None, revision: int | None = None) -> str:
    """Name of the disk or machine image of `key` with content digest `digest`.

    `<key>-<digest[:12]>` for machine images, `<key>-disk-<digest[:12]>` for disk images, with
    `-pr<N>` after the key for pull-request builds. Valid on AWS, Azure and GCP; a long key is
    shortened, never the digest. `revision` (2, 3, ...) names an image rebuilt for a digest
    that already has one (`overwrite-machine-image`): `<key>-r<R>-<digest[:12]>`.
    """
    if kind not in ("machine", "disk"):
        raise ValueError(f"unknown image kind {kind!r}")
    if not re.fullmatch(r"[0-9a-f]{12,}", digest):
        raise ValueError(f"not a hex digest: {digest!r}")
    suffix = ("-disk" if kind == "disk" else "") + (f"-pr{pull_request}" if pull_request else "")
    suffix += f"-r{revision}" if revision and revision > 1 else ""
    suffix += f"-{digest[:DIGEST_CHARS]}"
    return _slug(key)[: MAX_IMAGE_NAME - len(suffix)].rstrip("-") + suffix


def pool_id(domain: str, variant: str) -> str:
    """The worker-manager id of a pool."""
    return f"{domain}/{variant}"


# Per-pull-request pools live under their own domain, so a pull request's role can manage them
# (`worker-manager:manage-worker-pool:<PR_POOL_DOMAIN>/*`) without reaching any real pool.
PR_POOL_DOMAIN = "cib-pr"
MAX_POOL_VARIANT = 38


def pr_pool_id(pool: str, pull_request: int, domain: str = PR_POOL_DOMAIN) -> str:
    """The per-pull-request pool for `pool` (`domain/variant`): `cib-pr/<domain>-<variant>-pr<N>`.

    worker-manager's rule for the part after `/`: lower case letters, digits and `-`, starting
    with a letter, at most 38 characters, not ending in `-`. Longer names keep their start and
    get a short hash of the whole pool id, so distinct pools never share a PR pool.
    """
    if pull_request <= 0:
        raise ValueError(f"not a pull request number: {pull_request}")
    base = re.sub(r"[^a-z0-9]+", "-", pool.lower()).strip("-")
    if not base[:1].isalpha():
        base = f"p-{base}"
    suffix = f"-pr{pull_request}"
    variant = base + suffix
    if len(variant) > MAX_POOL_VARIANT:
        digest = hashlib.sha256(pool.encode()).hexdigest()[:6]
        keep = MAX_POOL_VARIANT - len(suffix) - len(digest) - 1
        variant = f"{base[:keep].rstrip('-')}-{digest}{suffix}"
    return pool_id(domain, variant)

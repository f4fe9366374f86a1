"""The one place that names images and pools. Builders, existence checks and pool deploys
all call these functions, so a name computed anywhere finds the same image."""

from __future__ import annotations

import re

DIGEST_CHARS = 12
# The strictest cloud rule wins: GCP image names are [a-z]([-a-z0-9]*[a-z0-9])?, at most 63.
MAX_IMAGE_NAME = 63


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug if slug[:1].isalpha() else f"k{slug}"


def image_name(key: str, digest: str, *, kind: str = "machine",
               pull_request: int | None = None) -> str:
    """Name of the disk or machine image of `key` with content digest `digest`.

    `<key>-<digest[:12]>` for machine images, `<key>-disk-<digest[:12]>` for disk images, with
    `-pr<N>` after the key for pull-request builds. Valid on AWS, Azure and GCP; a long key is
    shortened, never the digest.
    """
    if kind not in ("machine", "disk"):
        raise ValueError(f"unknown image kind {kind!r}")
    if not re.fullmatch(r"[0-9a-f]{12,}", digest):
        raise ValueError(f"not a hex digest: {digest!r}")
    suffix = ("-disk" if kind == "disk" else "") + (f"-pr{pull_request}" if pull_request else "")
    suffix += f"-{digest[:DIGEST_CHARS]}"
    return _slug(key)[: MAX_IMAGE_NAME - len(suffix)].rstrip("-") + suffix


def pool_id(domain: str, variant: str) -> str:
    """The worker-manager id of a pool."""
    return f"{domain}/{variant}"

"""The disk image's VHD where an Azure build can make an image of it: a page blob in the
target's region (Azure makes an image only of a VHD in the image's own region).

- a VHD blob in the target's region is used where it is;
- a VHD in S3 (the bundled Windows keys store their disk images there) is streamed from S3
  through this worker into a page blob of the target's storage account (`storage`, container
  `disk-images`) by the disk step's own page-blob upload; its SHA-256 is computed on the way
  and must be the record's, or the copy is deleted (exit 2);
- a VHD blob of another region's storage account is copied server-side (Copy Blob, reading
  the source through a read-only user delegation SAS); the source's `cibsha256` metadata must
  be the record's SHA-256 (the bytes never pass through here to be hashed).

A blob already in the target's account whose `cibsha256` metadata is the record's SHA-256 is
reused: a rerun copies nothing. A copy gets that metadata only once it is complete and
checked, so an interrupted or failed copy is never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import manifest
from ..clouds.aws import S3
from ..clouds.azure import Azure, blob_url, parse_blob_url
from ..config import Target, normalise_region
from ..errors import BuildError, CibError
from .context import BuildContext
from .disk import AZURE_METADATA, DEFAULT_CONTAINER, DIGEST_METADATA, SHA256_METADATA

SHA256_KEY = AZURE_METADATA[SHA256_METADATA]
COPY_TIMEOUT = 4 * 3600.0


@dataclass(frozen=True)
class Placement:
    """Where the build takes the VHD from (`source`: `here`, `s3` or `blob`) and the blob
    the image is made of."""

    source: str
    account: str
    container: str
    name: str

    @property
    def url(self) -> str:
        return blob_url(self.account, self.container, self.name)


def placement(record: manifest.DiskImageRecord, target: Target) -> Placement:
    """How the VHD of `record` reaches `target`'s region (pure)."""
    if record.image_format.lower() != "vhd":
        raise CibError(f"disk image {record.location} is {record.image_format}: Azure makes "
                       "images of fixed VHDs (image.format: VHD)")
    blob = parse_blob_url(record.location)
    if blob and normalise_region(record.region) == normalise_region(target.region):
        return Placement("here", *blob)
    if blob is None and not record.location.startswith("s3://"):
        raise CibError(f"disk image {record.location} is neither in S3 nor in Azure blob "
                       "storage")
    account = target.storage
    if not account:
        raise CibError(f"disk image {record.location} is in {record.region}, not in "
                       f"{target.id}'s region, and the target names no storage account "
                       "(`storage`) to copy it into")
    name = record.location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return Placement("s3" if blob is None else "blob", account, DEFAULT_CONTAINER, name)


class HashingReader:
    """Reads a stream through, keeping the SHA-256 and count of the bytes read."""

    def __init__(self, stream: Any):
        self.stream, self.digest, self.count = stream, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data


def metadata(record: manifest.DiskImageRecord) -> dict[str, str]:
    """The metadata of a checked copy (the disk step's names)."""
    return {AZURE_METADATA[DIGEST_METADATA]: record.disk_digest, SHA256_KEY: record.sha256}


def vhd_url(ctx: BuildContext, azure: Azure, record: manifest.DiskImageRecord, target: Target,
            s3: Callable[[], S3] = S3, interval: float = 15.0) -> str:
    """The URL of a VHD blob of `record` in `target`'s region: the record's own, or a copy in
    the target's storage account (reused when already there)."""
    place = placement(record, target)
    if place.source == "here":
        return record.location
    found = azure.blob_properties(place.account, place.container, place.name)
    if found and found["metadata"].get(SHA256_KEY) == record.sha256:
        ctx.progress.say(f"{place.url} already holds disk image {record.name} (SHA-256 "
                         f"{record.sha256[:12]}): reusing it")
        return place.url
    if place.source == "s3":
        copy_from_s3(ctx, azure, record, place, s3())
    else:
        copy_blob(ctx, azure, record, place, target, interval)
    return place.url


def copy_from_s3(ctx: BuildContext, azure: Azure, record: manifest.DiskImageRecord,
                 place: Placement, s3: S3) -> None:
    """Stream the VHD from S3 into a page blob, check its SHA-256, then mark it checked."""
    bucket, _, key = record.location.removeprefix("s3://").partition("/")
    stream = s3.open(bucket, key)
    try:
        if stream.size != record.size:
            raise CibError(f"{record.location} holds {stream.size} bytes but the disk image "
                           f"record says {record.size}: not the recorded disk image")
        ctx.progress.say(f"copying {record.location} ({stream.size} bytes) to {place.url}, "
                         "streamed through this worker")
        reader = HashingReader(stream)
        azure.upload_page_stream(reader, stream.size, place.account, place.container,
                                 place.name, {}, what=record.location)
    finally:
        stream.close()
    actual = reader.digest.hexdigest()
    if actual != record.sha256:
        azure.delete_blob(place.account, place.container, place.name)
        raise CibError(f"{record.location}: the copy's SHA-256 is {actual} but the disk image "
                       f"record says {record.sha256}; deleted the copy {place.url}")
    azure.set_blob_metadata(place.account, place.container, place.name, metadata(record))
    ctx.progress.say(f"copied {reader.count} bytes; SHA-256 {actual} matches the record")


def copy_blob(ctx: BuildContext, azure: Azure, record: manifest.DiskImageRecord,
              place: Placement, target: Target, interval: float) -> None:
    """Copy the VHD blob of another region's account server-side and wait for the copy."""
    account, container, name = parse_blob_url(record.location) or ("", "", "")
    source = azure.blob_properties(account, container, name)
    if source is None:
        raise CibError(f"disk image {record.location} does not exist (any more)")
    recorded = source["metadata"].get(SHA256_KEY)
    if source["size"] != record.size or (recorded and recorded != record.sha256):
        raise CibError(f"{record.location} is not the recorded disk image: {source['size']} "
                       f"bytes, SHA-256 {recorded or 'not recorded'}; the record says "
                       f"{record.size} bytes, {record.sha256}")
    ctx.progress.say(f"copying {record.location} ({record.region}) to {place.url} "
                     f"({normalise_region(target.region)}), a server-side copy")
    # The SHA-256 goes on only once the copy succeeded: a failed one is never reused.
    copy = azure.begin_blob_copy(
        azure.readable_url(account, container, name), place.account, place.container,
        place.name, {AZURE_METADATA[DIGEST_METADATA]: record.disk_digest})
    try:
        ctx.progress.wait(f"the copy to {place.url}", copy.state, done={"success"},
                          failed={"failed", "aborted", "missing"}, timeout=COPY_TIMEOUT,
                          interval=interval)
    except BuildError as exc:
        detail = f" ({copy.description})" if copy.description else ""
        with contextlib.suppress(CibError):
            azure.delete_blob(place.account, place.container, place.name)
        raise BuildError(f"{exc}{detail}") from None
    azure.set_blob_metadata(place.account, place.container, place.name, metadata(record))
    ctx.progress.say(f"copied {record.size} bytes to {place.url}")

"""`cib image disk --key K`: the disk image of a key, from its ISO or source image.

Steps, each one line in the task log:

1. **fetch** the source the config names: `image.source` (a disk image, e.g. a Linux cloud
   image) or else `iso.source` (an installation ISO), from the environment's source mirror
   when it has one and holds the source (`source-mirror` in environments.yaml: an S3 bucket
   keeping each source under `sha256/<its SHA-256>`), else from S3 (`platform: amazon`,
   boto3) or an https URL (`url:`);
2. **verify** its SHA-256 against `source.sha256` / `iso.sha256` when the config gives one
   (a mismatch is an error: exit 2);
3. **convert** it: a source image with `qemu-img convert` to `image.format` (raw by default;
   VHD is written fixed-size, as Azure needs); an ISO with the worker's conversion command
   (`--convert-command`, default `$CIB_CONVERT_COMMAND`), run as a subprocess;
4. **upload** the result to `image.target` as `<name>.<ext>`, where the name is
   `naming.image_name(key, disk digest, kind="disk")`: an S3 bucket (`platform: amazon`,
   `bucket`), or an Azure storage account (`platform: azure`, `storage`, the container in
   `bucket`, default `disk-images`), as a page blob (Azure makes disks and images from page
   blobs of fixed VHDs); an object already there with the same disk digest and SHA-256 is
   reused;
5. **record** it in `public/disk-image.json` (`manifest.DiskImageRecord`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .. import manifest
from ..clouds.aws import S3, sha256_file
from ..config import ImageKey
from ..config.model import SourceMirror
from ..digests import disk_inputs
from ..errors import BuildError, CibError, TransientError
from ..naming import image_name
from .context import BuildContext

# image.format (any case) -> qemu-img's name of the format, and the file extension.
QEMU_FORMATS = {"raw": "raw", "vhd": "vpc", "vpc": "vpc", "vhdx": "vhdx", "vmdk": "vmdk",
                "qcow2": "qcow2"}
EXTENSIONS = {"raw": "raw", "vpc": "vhd", "vhdx": "vhdx", "vmdk": "vmdk", "qcow2": "qcow2"}
DIGEST_METADATA = "cib-disk-digest"
SHA256_METADATA = "cib-sha256"
# Azure metadata names must be C# identifiers: no dashes.
AZURE_METADATA = {DIGEST_METADATA: "cibdiskdigest", SHA256_METADATA: "cibsha256"}
DEFAULT_CONTAINER = "disk-images"

Runner = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class Source:
    """The file a disk image is made from."""

    kind: str  # "image" (a disk image to convert) or "iso" (an installation ISO)
    platform: str  # "amazon" or "url"
    location: str  # s3://bucket/key or an https URL
    sha256: str | None
    format: str | None

    @property
    def filename(self) -> str:
        name = self.location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return name or f"source.{self.kind}"


def disk_source(key: ImageKey) -> Source:
    """Where the disk image of `key` comes from (pure): `image.source`, else `iso.source`."""
    image_source = key.image.get("source")
    iso = key.iso or {}
    if image_source:
        kind, source, sha = "image", image_source, image_source.get("sha256")
    elif iso.get("source"):
        source = iso["source"]
        kind, sha = "iso", source.get("sha256") or iso.get("sha256")
    else:
        raise CibError(f"{key.file}: {key.name} has no image.source or iso.source: it needs "
                       "no disk image (built from image.base)")
    if source.get("url"):
        platform, location = "url", source["url"]
    elif source.get("platform") == "amazon" and source.get("bucket"):
        platform, location = "amazon", f"s3://{source['bucket']}/{source['key']}"
    else:
        raise CibError(f"{key.file}: {kind} source of {key.name} must be an https `url` or an "
                       f"amazon `bucket` and `key` (platform {source.get('platform')!r} is "
                       "not supported for fetching yet)")
    return Source(kind, platform, location, sha.lower() if sha else None, source.get("format"))


def output_format(key: ImageKey) -> str:
    """qemu-img's name of the format the disk image is written in (`image.format`, raw by
    default)."""
    wanted = str(key.image.get("format") or "raw").lower()
    if wanted not in QEMU_FORMATS:
        raise CibError(f"{key.file}: image.format {key.image.get('format')!r} is not one of "
                       f"{', '.join(sorted(QEMU_FORMATS))}")
    return QEMU_FORMATS[wanted]


def qemu_convert_command(source: Path, source_format: str | None, output: Path,
                         out_format: str) -> list[str]:
    """The `qemu-img convert` command line (pure). VHD is written fixed-size with its exact
    size, the form Azure accepts."""
    command = ["qemu-img", "convert", "-p"]
    if source_format:
        command += ["-f", QEMU_FORMATS.get(source_format.lower(), source_format.lower())]
    command += ["-O", out_format]
    if out_format == "vpc":
        command += ["-o", "subformat=fixed,force_size=on"]
    return [*command, str(source), str(output)]


def conversion_command(template: str, *, iso: Path, output: Path, config: Path,
                       out_format: str) -> list[str]:
    """The worker's ISO conversion command (pure): `template` split like a shell would, with
    `{iso}`, `{output}`, `{config}` (a JSON file of the disk image's inputs) and `{format}`
    replaced in each word."""
    values = {"iso": str(iso), "output": str(output), "config": str(config),
              "format": out_format}
    try:
        return [word.format(**values) for word in shlex.split(template)]
    except (KeyError, IndexError, ValueError) as exc:
        raise CibError(f"conversion command {template!r}: bad placeholder {exc}; use {{iso}}, "
                       "{output}, {config} and {format}") from None


def verify_sha256(path: Path, expected: str | None, what: str) -> str:
    """The file's SHA-256; CibError when the config gives another one."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise CibError(f"{what}: SHA-256 is {actual} but the config says {expected}; the file "
                       "changed or the config is wrong")
    return actual


def run(command: Sequence[str]) -> int:
    """Run `command`, its output going to the task log; its exit status."""
    try:
        return subprocess.run(list(command), check=False).returncode
    except FileNotFoundError:
        raise CibError(f"{command[0]}: command not found on this worker") from None


def download_url(url: str, destination: Path, http: requests.Session) -> None:
    """Stream an https URL to `destination`."""
    try:
        with http.get(url, stream=True, timeout=60) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(f"{url}: HTTP {response.status_code}; try again later")
            if response.status_code != 200:
                raise BuildError(f"{url}: HTTP {response.status_code}")
            with destination.open("wb") as handle:
                for block in response.iter_content(1 << 20):
                    handle.write(block)
    except requests.RequestException as exc:
        raise TransientError(f"downloading {url} failed: {exc}") from None


@dataclass
class DiskBuild:
    """The tools a disk build uses; tests pass fakes of the clouds' endpoints, not of these."""

    s3: S3
    http: requests.Session
    work_dir: Path
    convert_command: str | None = None
    runner: Runner = run
    azure: Any = None  # clouds.azure.Azure, for keys whose image.target is on Azure


def source_mirror(ctx: BuildContext) -> SourceMirror | None:
    """The source mirror of the environment the build runs for (`CIB_ENVIRONMENT`), if any."""
    environment = ctx.fleet.environments.get(ctx.environment)
    return environment.source_mirror if environment else None


def fetch_mirrored(source: Source, build: DiskBuild, ctx: BuildContext, destination: Path
                   ) -> bool:
    """Download the source from the environment's source mirror into `destination`: True when
    the mirror had it. A source without a SHA-256 in the config is never looked up (the
    mirror is keyed by it); a mirror that cannot be read is a warning, not a failure, since
    the source's own location may still answer."""
    mirror = source_mirror(ctx)
    if mirror is None or source.sha256 is None:
        return False
    key = mirror.key(source.sha256)
    where = f"s3://{mirror.bucket}/{key}"
    try:
        if build.s3.head(mirror.bucket, key) is None:
            ctx.progress.say(f"the source mirror has no {where}")
            return False
        ctx.progress.say(f"fetching the {source.kind} {source.location} from the source "
                         f"mirror: {where}")
        build.s3.download(mirror.bucket, key, destination)
    except CibError as exc:
        ctx.progress.say(f"warning: the source mirror could not be read ({exc})")
        return False
    return True


def fetch(source: Source, build: DiskBuild, ctx: BuildContext) -> Path:
    """Download the source into the work directory: from the environment's source mirror
    when it holds it, else from where the config says."""
    destination = build.work_dir / f"source-{source.filename}"
    if fetch_mirrored(source, build, ctx, destination):
        ctx.progress.say(f"fetched {destination.stat().st_size} bytes")
        return destination
    ctx.progress.say(f"fetching the {source.kind} {source.location}")
    if source.platform == "url":
        download_url(source.location, destination, build.http)
    else:
        bucket, _, key = source.location.removeprefix("s3://").partition("/")
        build.s3.download(bucket, key, destination)
    ctx.progress.say(f"fetched {destination.stat().st_size} bytes")
    return destination


def convert(source: Source, fetched: Path, ctx: BuildContext, build: DiskBuild) -> Path:
    """Convert the fetched file to the disk image's format; the path of the result."""
    fmt = output_format(ctx.key)
    name = image_name(ctx.key.name, ctx.digests.disk, kind="disk",
                      pull_request=ctx.pull_request)
    output = build.work_dir / f"{name}.{EXTENSIONS[fmt]}"
    if source.kind == "image":
        if shutil.which("qemu-img") is None and build.runner is run:
            raise CibError("qemu-img is not installed on this worker (Debian: qemu-utils)")
        command = qemu_convert_command(fetched, source.format, output, fmt)
    else:
        template = build.convert_command
        if not template:
            raise CibError(f"{ctx.key.name} is built from an ISO: give the worker's conversion "
                           "command with --convert-command or CIB_CONVERT_COMMAND")
        inputs = build.work_dir / "disk-inputs.json"
        inputs.write_text(json.dumps({"key": ctx.key.name, "digest": ctx.digests.disk,
                                      **disk_inputs(ctx.key, ctx.fleet.shared)}, indent=2))
        command = conversion_command(template, iso=fetched, output=output, config=inputs,
                                     out_format=fmt)
    ctx.progress.say(f"converting: {shlex.join(command)}")
    status = build.runner(command)
    if status != 0:
        raise BuildError(f"conversion failed with exit status {status}: {shlex.join(command)}")
    if not output.is_file() or output.stat().st_size == 0:
        raise BuildError(f"conversion exited 0 but wrote no {output.name}")
    ctx.progress.say(f"converted to {output.name} ({output.stat().st_size} bytes)")
    return output


@dataclass(frozen=True)
class Destination:
    """Where the disk image is stored: an S3 bucket, or a container of an Azure storage
    account (whose region is that of `image.target.region`, else of the key's Azure target
    with that `storage`)."""

    platform: str  # "amazon" or "azure"
    bucket: str  # the S3 bucket, or the blob container
    account: str | None = None
    region: str | None = None

    def location(self, name: str) -> str:
        if self.platform == "amazon":
            return f"s3://{self.bucket}/{name}"
        # the environment's blob endpoint (a sovereign cloud's, or the local pipeline's)
        from ..clouds.azure import blob_url

        return blob_url(str(self.account), self.bucket, name)


def upload_target(key: ImageKey) -> Destination:
    """Where the disk image of `key` is stored (`image.target`)."""
    target = key.image.get("target") or {}
    platform = target.get("platform")
    if platform == "amazon" and target.get("bucket"):
        return Destination("amazon", target["bucket"])
    if platform == "azure" and target.get("storage"):
        account = target["storage"]
        region = target.get("region") or next(
            (t.region for t in key.targets
             if t.platform == "azure" and t.storage == account), None)
        if region is None:
            raise CibError(f"{key.file}: image.target of {key.name} names storage account "
                           f"{account!r}, which no Azure target of the key uses: give its "
                           "region (image.target.region)")
        return Destination("azure", target.get("bucket") or DEFAULT_CONTAINER, account, region)
    raise CibError(f"{key.file}: image.target of {key.name} must be an amazon bucket or an "
                   f"azure storage account (platform {platform!r} is not supported for disk "
                   "images yet)")


def _existing(destination: Destination, name: str, build: DiskBuild
              ) -> tuple[int, dict[str, str]] | None:
    """`(size, metadata under cib's names)` of the object already stored, or None."""
    if destination.platform == "amazon":
        head = build.s3.head(destination.bucket, name)
        return (int(head["ContentLength"]), head.get("Metadata", {})) if head else None
    found = build.azure.blob_properties(destination.account, destination.bucket, name)
    if found is None:
        return None
    names = {v: k for k, v in AZURE_METADATA.items()}
    return found["size"], {names.get(k, k): v for k, v in found["metadata"].items()}


def _upload(destination: Destination, output: Path, name: str, metadata: dict[str, str],
            build: DiskBuild) -> None:
    if destination.platform == "amazon":
        build.s3.upload(output, destination.bucket, name, metadata)
    else:
        build.azure.upload_page_blob(output, destination.account, destination.bucket, name,
                                     {AZURE_METADATA[k]: v for k, v in metadata.items()})


def build_disk_image(ctx: BuildContext, build: DiskBuild) -> manifest.DiskImageRecord:
    """Fetch, verify, convert and upload the disk image of `ctx.key`; write and return its
    record."""
    source = disk_source(ctx.key)
    destination = upload_target(ctx.key)
    fmt = output_format(ctx.key)
    if destination.platform == "azure" and fmt != "vpc":
        raise CibError(f"{ctx.key.file}: image.format of {ctx.key.name} must be VHD to store "
                       "it on Azure (a fixed VHD in a page blob)")
    name = image_name(ctx.key.name, ctx.digests.disk, kind="disk",
                      pull_request=ctx.pull_request)
    object_key = f"{name}.{EXTENSIONS[fmt]}"
    location = destination.location(object_key)
    ctx.progress.say(f"disk image {name} of {ctx.key.name} (disk digest {ctx.digests.disk})")
    region = destination.region or build.s3.bucket_region(destination.bucket)
    existing = _existing(destination, object_key, build)
    metadata = existing[1] if existing else {}
    if existing and metadata.get(DIGEST_METADATA) == ctx.digests.disk and \
            metadata.get(SHA256_METADATA):
        ctx.progress.say(f"{location} already holds this disk digest: reusing it")
        size, sha = existing[0], metadata[SHA256_METADATA]
    else:
        fetched = fetch(source, build, ctx)
        checked = verify_sha256(fetched, source.sha256, source.location)
        ctx.progress.say(f"SHA-256 {checked} " + ("matches the config" if source.sha256 else
                                                  "(the config gives none to check)"))
        output = convert(source, fetched, ctx, build)
        size, sha = output.stat().st_size, sha256_file(output)
        ctx.progress.say(f"uploading {output.name} to {location} ({region})")
        _upload(destination, output, object_key,
                {DIGEST_METADATA: ctx.digests.disk, SHA256_METADATA: sha}, build)
    record = manifest.disk_image_record(
        ctx.key.name, platform=destination.platform, region=region, location=location,
        image_format=EXTENSIONS[fmt], size=size, sha256=sha, disk_digest=ctx.digests.disk,
        config_commit=ctx.config_commit, build_task_id=ctx.task_id, created=ctx.now(),
        pull_request=ctx.pull_request)
    ctx.write_artifact("disk-image.json", manifest.dumps(record))
    return record

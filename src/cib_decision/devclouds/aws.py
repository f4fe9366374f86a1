"""A local AWS for the local pipeline (`cib dev-up`) and its tests: moto in server mode on
127.0.0.1, with the project's EC2 extensions, and what a fleet's tasks expect to find there.

`MotoServer` serves every AWS service moto has on one port, in a thread of this process, so
tasks running as separate processes reach it over HTTP exactly as they reach AWS: through the
clouds secret, whose `aws_endpoint_url` (`MotoServer.clouds_secret()`) becomes
`AWS_ENDPOINT_URL`, which boto3 sends every service's requests to (cloudcreds.py). Its EC2 is
moto's plus `moto_ec2_import` (ImportSnapshot, RegisterImage's tags) and a stand-in for the
builders' bootstrap: a builder instance (tagged `cib:builder=true`) still running
`bootstrap_seconds` after its launch is stopped (or terminated, as its
`InstanceInitiatedShutdownBehavior` says) the next time it is described, as the bootstrap's
own shutdown would, and its console output becomes what its script would have written
(`devclouds.transcript`: every execution passed, every smoke test too but those named in
`failing_tests`); `bootstrap_seconds=None` never stops one (a bootstrap that hangs).
Snapshot imports complete `import_seconds` after they start. With the defaults (0) a build's
waits see the final state on their first poll and never sleep.

Seeding (`seed_fleet`, or each part alone) puts in what a fleet's tasks read:

- `seed_base_images`: the base AMIs the keys' `image.base.amazon` selects in each AWS target's
  region: an image with the explicit `id`, or one of `owner` whose name matches `name` (owner
  `amazon` is Amazon's account, with its alias, as moto keeps its own public images);
- `seed_buckets`: every S3 bucket the config names for AWS (disk-image targets, S3 sources,
  AWS targets' buckets, shared inputs' S3 sources) and the environments' source mirrors;
- `seed_disk_sources`: a stand-in for each disk source: a small real disk image made with
  `qemu-img` (a source image, in its `format`) or a few bytes (an ISO), put where the tasks
  look: an S3 source at its bucket and key, an https source in every environment's source
  mirror (the local pipeline has no internet; docs/images.md). A stand-in's SHA-256 is not
  the config's, so `pin_sources` rewrites the config's `sha256` values to the stand-ins' in a
  copy of the config (textually: comments and lines stay), which the local pipeline commits
  and builds. The stand-ins are the same bytes on every run, so the pins are too.

moto keeps its state in module globals: one `MotoServer` per process, and a `mock_aws` in
the same process shares (and resets) it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import boto3
from moto import settings as moto_settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.base_backend import BackendDict
from moto.core.model_instances import reset_model_data
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from ..config import Fleet, ImageKey, normalise_region
from ..devtc.serving import ServerThread
from ..errors import CibError
from ..images.bootstrap import is_windows
from ..images.disk import QEMU_FORMATS, disk_source
from . import moto_ec2_import
from .transcript import transcript

ACCOUNT = DEFAULT_ACCOUNT_ID  # moto's account: what every access key maps to
AMAZON_ACCOUNT = "801119661308"  # the owner of Amazon's public images
ACCESS_KEY_ID = SECRET_ACCESS_KEY = "testing"
DEFAULT_REGION = "us-east-1"
BASE_IMAGE_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
BUILDER_TAG = "cib:builder"  # images.identity.builder_tags
STAND_IN_MIB = 8  # virtual size of a stand-in source image
# An ISO conversion command (`--convert-command`, `CIB_CONVERT_COMMAND`) for the local
# pipeline: the stand-in ISOs hold no installer, so it makes an empty fixed-size VHD (the
# bundled ISO keys' format) of 8 MiB instead.
STAND_IN_CONVERT_COMMAND = ("qemu-img create -q -f vpc -o subformat=fixed,force_size=on "
                            "{output} 8M")


class LocalEC2Response(moto_ec2_import.ImportingEC2Response):
    """moto's EC2 with the project's extensions, plus the builders' bootstrap played by the
    clock (see the module's docstring). `MotoServer` makes a subclass with its settings."""

    bootstrap_seconds: ClassVar[float | None] = 0.0
    import_seconds: ClassVar[float] = 0.0
    # smoke tests the stand-in reports failed (`transcript`), by name
    failing_tests: ClassVar[set[str]] = set()

    def stage(self, task: dict[str, Any]) -> tuple[str, str] | None:
        if time.monotonic() - task["started"] < self.import_seconds:
            return ("active", "converting")
        return None

    def describe_instances(self) -> Any:
        self._play_bootstraps()
        return super().describe_instances()

    def _play_bootstraps(self) -> None:
        if self.bootstrap_seconds is None:
            return
        now = utcnow()
        for instance in self.ec2_backend.all_instances():
            if instance.state != "running" or not _is_builder(instance):
                continue
            launched = instance.launch_time
            if isinstance(launched, datetime) and \
                    (now - launched).total_seconds() < self.bootstrap_seconds:
                continue
            user_data = instance.user_data.decode() if instance.user_data else ""
            moto_ec2_import.set_console_output(
                instance.id, transcript(user_data, self.failing_tests))
            if instance.instance_initiated_shutdown_behavior == "terminate":
                self.ec2_backend.terminate_instances([instance.id])
            else:
                self.ec2_backend.stop_instances([instance.id])


def _is_builder(instance: Any) -> bool:
    return any(t["key"] == BUILDER_TAG and t["value"] == "true" for t in instance.get_tags())


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (errors are still logged)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def _setting(module: Any, name: str, value: Any) -> Iterator[None]:
    """`module.name` set to `value` while the context lasts."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, before)


class MotoServer:
    """moto in server mode on `host` (a free port unless `port` is given), serving from a
    thread of this process, with the project's EC2 extensions installed while it runs.

    `with MotoServer() as aws:` or `start()` / `stop()`; `endpoint_url`, `clouds_secret()`,
    `client(service, region)`, `reset()`; `account` is the account every access key maps to."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 bootstrap_seconds: float | None = 0.0, import_seconds: float = 0.0,
                 log_requests: bool = False):
        self.host, self.port = host, port
        self.account = ACCOUNT
        self.response = type("LocalEC2Response", (LocalEC2Response,), {
            "bootstrap_seconds": bootstrap_seconds, "import_seconds": import_seconds})
        self.log_requests = log_requests
        self._serving: ServerThread | None = None
        self._extensions: contextlib.ExitStack | None = None

    def start(self) -> MotoServer:
        """Reset moto's state, install the extensions and serve; returns self."""
        if self._serving is not None:
            return self
        self.reset()
        extensions = contextlib.ExitStack()
        extensions.enter_context(moto_ec2_import.install(self.response))
        # EC2 refuses an instance type it does not offer in the region (moto accepts any
        # unless asked): a typo in a target's `machine.type` fails the build as it would
        extensions.enter_context(_setting(moto_settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
                                          True))
        try:
            server = make_server(
                self.host, self.port, DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler if self.log_requests else _QuietHandler)
        except BaseException:
            extensions.close()
            raise
        self._extensions = extensions
        self.port = server.server_port
        self._serving = ServerThread(server, name="moto-server", poll_interval=0.1).start()
        return self

    def stop(self) -> None:
        """Stop serving, uninstall the extensions and forget moto's state."""
        if self._serving is None:
            return
        self._serving.stop()
        if self._extensions is not None:
            self._extensions.close()
        self._serving = self._extensions = None
        self.reset()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def reset() -> None:
        """Forget every resource of every service (as moto's `/moto-api/reset` does)."""
        BackendDict.reset()
        reset_model_data()
        moto_ec2_import.TASKS.clear()

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>`: every AWS service's endpoint (S3 is addressed
        path-style there, as botocore does for an IP address)."""
        if self._serving is None:
            raise RuntimeError("MotoServer is not started")
        return f"http://{self.host}:{self.port}"

    def clouds_secret(self) -> dict[str, str]:
        """The AWS fields of the clouds secret (`project/cib/level-<L>/clouds`) that send a
        task's AWS calls here."""
        return {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY,
                "aws_endpoint_url": self.endpoint_url}

    def client(self, service: str, region: str = DEFAULT_REGION) -> Any:
        """A boto3 client of `service` talking to this server."""
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=region).client(service, endpoint_url=self.endpoint_url)


# --- seeding -----------------------------------------------------------------------------------


def aws_regions(key: ImageKey) -> list[str]:
    """The regions of a key's AWS targets, normalised, in config order."""
    return list(dict.fromkeys(normalise_region(t.region) for t in key.targets
                              if t.platform == "amazon"))


def _image_id(region: str, name: str) -> str:
    return "ami-" + hashlib.sha256(f"{region}/{name}".encode()).hexdigest()[:17]


def _name_matching(pattern: str) -> str:
    """A name `pattern` (`*` and `?` wildcards) matches: `*` as `cib-dev`, `?` as `0`."""
    name = pattern.replace("*", "cib-dev").replace("?", "0")
    if not fnmatch.fnmatchcase(name, pattern):
        raise CibError(f"cannot make an image name matching {pattern!r}")
    return name


def seed_base_images(server: MotoServer, fleet: Fleet, *,
                     created: datetime = BASE_IMAGE_CREATED) -> dict[tuple[str, str], str]:
    """An available AMI for each AWS target of a key with `image.base.amazon`, as its build
    selects it: the explicit `id`, or an image of `owner` (`amazon`, `self` or an account
    id) named to match `name`, created at `created`. `{(region, image name): image id}`;
    seeding again changes nothing."""
    seeded: dict[tuple[str, str], str] = {}
    for key in fleet.keys.values():
        base = (key.image.get("base") or {}).get("amazon")
        if not base:
            continue
        for region in aws_regions(key):
            if base.get("id"):
                image_id, name, owner = base["id"], f"{key.name}-base", "self"
            else:
                name = _name_matching(base["name"])
                image_id, owner = _image_id(region, name), base["owner"]
            if owner == "self":
                owner = server.account
            backend = ec2_backends[server.account][region]  # in this process: moto's own
            if image_id not in backend.amis:
                backend.amis[image_id] = Ami(
                    backend, ami_id=image_id, name=name,
                    owner_id=AMAZON_ACCOUNT if owner == "amazon" else owner,
                    owner_alias="amazon" if owner == "amazon" else None, public=True,
                    creation_date=created.replace(tzinfo=None),
                    platform="windows" if is_windows(key.image) else None,
                    architecture="x86_64", virtualization_type="hvm",
                    root_device_type="ebs", region_name=region)
            seeded[(region, name)] = image_id
    return seeded


def _amazon_buckets(value: Any) -> Iterable[str]:
    """Every `bucket` of an object (at any depth) whose `platform` is `amazon`."""
    if isinstance(value, dict):
        if value.get("platform") == "amazon" and isinstance(value.get("bucket"), str):
            yield value["bucket"]
        for item in value.values():
            yield from _amazon_buckets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _amazon_buckets(item)


def fleet_buckets(fleet: Fleet) -> list[str]:
    """The S3 buckets the config names: of disk-image targets and sources, AWS targets and
    shared inputs (`platform: amazon`), and the environments' source mirrors; sorted."""
    names = set()
    for key in fleet.keys.values():
        names.update(_amazon_buckets(key.image))
        names.update(_amazon_buckets(key.iso or {}))
        names.update(_amazon_buckets([t.raw for t in key.targets]))  # at any depth, as written
    names.update(_amazon_buckets(fleet.shared.files))
    names.update(e.source_mirror.bucket for e in fleet.environments.values()
                 if e.source_mirror and e.source_mirror.platform == "amazon")
    return sorted(names)


def seed_buckets(server: MotoServer, fleet: Fleet, region: str = DEFAULT_REGION) -> list[str]:
    """Create every bucket of `fleet_buckets` (in `region`) that is not there; their names."""
    buckets = fleet_buckets(fleet)
    _create_buckets(server.client("s3", region), buckets, region)
    return buckets


def _create_buckets(s3: Any, buckets: Iterable[str], region: str) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    extra = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    for bucket in buckets:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket, **extra)


@dataclass(frozen=True)
class SeededSource:
    """The stand-in of one disk source: the keys whose config names it, what kind it is, where
    the config says it is, where the stand-in was put, its SHA-256 and the config's."""

    keys: tuple[str, ...]
    kind: str  # "image" or "iso"
    location: str
    stored: tuple[str, ...]
    sha256: str
    config_sha256: str | None


def stand_in_image(path: Path, fmt: str = "qcow2", *, label: str = "",
                   size_mib: int = STAND_IN_MIB) -> Path:
    """A small real disk image at `path` in `fmt` (qemu-img's name or an `image.format`),
    `size_mib` MiB of virtual size whose first sector says what it stands in for: the same
    bytes for the same arguments. Made with qemu-img (Debian: qemu-utils)."""
    if shutil.which("qemu-img") is None:
        raise CibError("qemu-img is not installed (Debian: apt-get install qemu-utils): the "
                       "local pipeline's disk sources are real disk images")
    qemu_format = QEMU_FORMATS.get(fmt.lower(), fmt.lower())
    with tempfile.TemporaryDirectory(prefix="cib-stand-in-") as work:
        raw = Path(work) / "disk.raw"
        with raw.open("wb") as handle:
            handle.write(f"cib stand-in disk image {label}\n".encode()[:512].ljust(512, b"\0"))
            handle.truncate(size_mib << 20)
        if qemu_format == "raw":
            shutil.copyfile(raw, path)
        else:
            subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", qemu_format,
                            str(raw), str(path)], check=True)
    return path


def stand_in_iso(label: str) -> bytes:
    """The bytes standing in for an installation ISO: 64 KiB that say what they stand in for."""
    return f"cib stand-in ISO {label}\n".encode().ljust(64 << 10, b"\0")


def seed_disk_sources(server: MotoServer, fleet: Fleet, work_dir: Path,
                      region: str = DEFAULT_REGION) -> list[SeededSource]:
    """Put a stand-in for every key's disk source where its disk task looks (see the module's
    docstring), creating buckets as needed; one `SeededSource` per source location."""
    s3 = server.client("s3", region)
    mirrors = sorted({e.source_mirror.bucket for e in fleet.environments.values()
                      if e.source_mirror and e.source_mirror.platform == "amazon"})
    by_location: dict[str, list[ImageKey]] = {}
    for key in fleet.keys.values():
        if key.image.get("source") or (key.iso or {}).get("source"):
            by_location.setdefault(disk_source(key).location, []).append(key)
    work_dir.mkdir(parents=True, exist_ok=True)
    seeded = []
    for location, keys in sorted(by_location.items()):
        source = disk_source(keys[0])
        if source.kind == "image":
            path = stand_in_image(work_dir / f"stand-in-{len(seeded)}.{source.format or 'raw'}",
                                  source.format or "raw", label=location)
            body = path.read_bytes()
        else:
            body = stand_in_iso(location)
        sha256 = hashlib.sha256(body).hexdigest()
        if source.platform == "amazon":
            bucket, _, object_key = location.removeprefix("s3://").partition("/")
            places = [(bucket, object_key)]
        elif not mirrors:
            raise CibError(f"{location} (of {', '.join(k.name for k in keys)}) is fetched from "
                           "the internet, which the local pipeline lacks: give the "
                           "environments a source-mirror in environments.yaml")
        elif source.sha256 is None:
            raise CibError(f"{location} (of {', '.join(k.name for k in keys)}) has no sha256 "
                           "in the config: a source mirror keeps sources by their SHA-256")
        else:
            places = [(bucket, f"sha256/{sha256}") for bucket in mirrors]
        _create_buckets(s3, sorted({b for b, _ in places}), region)
        for bucket, object_key in places:
            s3.put_object(Bucket=bucket, Key=object_key, Body=body)
        seeded.append(SeededSource(
            tuple(k.name for k in keys), source.kind, location,
            tuple(f"s3://{b}/{k}" for b, k in places), sha256, source.sha256))
    return seeded


def pins(sources: Iterable[SeededSource]) -> dict[str, str]:
    """`{config's sha256: stand-in's sha256}` of the sources whose config gives another."""
    return {s.config_sha256: s.sha256 for s in sources
            if s.config_sha256 and s.config_sha256 != s.sha256}


def pin_sources(config_dir: Path, replacements: Mapping[str, str]) -> list[Path]:
    """Replace each SHA-256 of `replacements` (old: new, e.g. `pins(seeded)`) in the YAML
    files of `config_dir`, as text (comments and line numbers stay); the files changed."""
    changed = []
    for path in sorted(Path(config_dir).glob("*.y*ml")):
        text = original = path.read_text(encoding="utf-8")
        for old, new in replacements.items():
            text = text.replace(old, new).replace(old.upper(), new)
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


@dataclass(frozen=True)
class Seeded:
    """What `seed_fleet` put into the local AWS."""

    base_images: dict[tuple[str, str], str] = field(default_factory=dict)
    buckets: tuple[str, ...] = ()
    sources: tuple[SeededSource, ...] = ()

    def pins(self) -> dict[str, str]:
        """See `pins`: what `pin_sources` must rewrite for the tasks to verify the stand-ins."""
        return pins(self.sources)


def seed_fleet(server: MotoServer, fleet: Fleet, work_dir: Path,
               region: str = DEFAULT_REGION) -> Seeded:
    """Base images, buckets and disk sources for every key of `fleet` (buckets and sources in
    `region`)."""
    base_images = seed_base_images(server, fleet)
    buckets = seed_buckets(server, fleet, region)
    sources = seed_disk_sources(server, fleet, work_dir, region)
    return Seeded(base_images, tuple(buckets), tuple(sources))

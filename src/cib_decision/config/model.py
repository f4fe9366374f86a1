"""The fleet: image keys, their targets and pools, shared sysprep inputs and environments.

Objects here are read-only views over validated config content; `raw` keeps the parsed
content exactly as written (after YAML parsing), which is what digests are computed over and
`cib changes` compares. Every other question about a key, target or pool (and each default
it has) is answered here, by a property or method, so that validation, the graph, builders,
pool rendering, purge and gc read one rule: code outside config/ reads `raw` only for the
config text as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..naming import pool_id

SHARED_FILES = ("disable-windows-service", "drivers", "packages", "product-keys",
                "unattend-commands")
ENVIRONMENTS_FILE = "environments"

# Task resolutions a key's owners are told about (Taskcluster notify's `on-<event>` routes).
NOTIFY_EVENTS = ("failed", "exception")
# An address that can be written into a notify route: no white space, one `@`, a dotted domain.
# What a disk's `variant` means on Azure, for the builder VM and the pool's workers alike:
# cloud-image-builder's reading (its builder and its pool config both made `ssd` a standard SSD,
# anything unknown a standard HDD), our longer words, and Azure's own SKU names as written.
AZURE_DISK_SKUS = {"ssd": "StandardSSD_LRS", "standard-ssd": "StandardSSD_LRS",
                   "premium": "Premium_LRS", "hdd": "Standard_LRS", "standard": "Standard_LRS"}


def azure_disk_sku(disk: dict[str, Any]) -> str:
    """The managed disk SKU (`storageAccountType`) of one entry of a target's `disk`: its
    `variant` (default `ssd`) by AZURE_DISK_SKUS, an Azure SKU name (`Premium_ZRS`) as it is."""
    variant = str(disk.get("variant", "ssd"))
    return AZURE_DISK_SKUS.get(variant.lower(), variant)


# What a disk without a `variant` is on the other clouds, builder and workers alike: an EBS
# volume type, a Compute Engine disk type (the variant itself is the cloud's word there).
DEFAULT_DISK_TYPES = {"amazon": "gp3", "google": "pd-balanced"}
# The machine a builder runs on when the target names none (`machine.type` or `.format`).
# Workers get no default: their size is the pool's capacity, a choice the config must make
# (pool rendering refuses a target without one).
BUILDER_MACHINE_SIZES = {"amazon": "m5.large", "azure": "Standard_D2s_v3",
                         "google": "n2-standard-4"}
# Every GCP region has a zone `<region>-b`: where a Google pool's workers run in a region
# whose target names no zone of it (a region it copies its image to).
GOOGLE_DEFAULT_ZONE = "b"

# What the config does not say about a pool (docs/pools.md).
DEFAULT_MIN_CAPACITY = 0
DEFAULT_MAX_CAPACITY = 1
DEFAULT_REGISTRATION_TIMEOUT = 3600  # seconds from request to `registerWorker`
DEFAULT_REREGISTRATION_TIMEOUT = 345600  # worker-manager's own default (4 days)


def os_family(image: dict[str, Any]) -> str:
    """`windows` when the image's `os` names Windows (`Windows 10`, `Windows Server 2022`),
    else `linux`: one rule for the bootstrap's language, the builders' and pools' OS types and
    the graph's worker OS."""
    return "windows" if "windows" in str(image.get("os", "")).lower() else "linux"


# Azure's storage account names: 3 to 24 lower case letters and digits.
STORAGE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def normalise_region(region: str) -> str:
    """Canonical spelling of a region: lower case, no white space (`North Central US` ->
    `northcentralus`, `us-east-1` stays `us-east-1`), as worker-manager and the clouds spell it."""
    return re.sub(r"\s+", "", region.strip().lower())


# How each cloud names its regions (after `normalise_region`), with an example: AWS
# `us-east-1`, `us-gov-west-1`, `eusc-de-east-1`; Azure `eastus2` (the predecessor's display
# names, such as `East US 2`, normalise to that); Google `us-central1`,
# `northamerica-northeast1`.
REGION_FORMS = {
    "amazon": (re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d+$"), "us-east-1"),
    "azure": (re.compile(r"^[a-z]+[a-z0-9]*$"), "eastus2 (or East US 2)"),
    "google": (re.compile(r"^[a-z]+-[a-z]+\d+$"), "us-central1"),
}
_CLOUD_NAMES = {"amazon": "an AWS", "azure": "an Azure", "google": "a Google"}


def region_problem(platform: str, region: str) -> str | None:
    """Why `region` (normalised) is not a region name of `platform`'s cloud, naming the cloud
    whose form it has; None when it is one (or the platform is not a known cloud)."""
    form = REGION_FORMS.get(platform)
    if form is None or form[0].match(region):
        return None
    other = next((cloud for cloud, (pattern, _) in REGION_FORMS.items()
                  if cloud != platform and pattern.match(region)), None)
    looks = f" (it looks like {_CLOUD_NAMES[other]} region)" if other else ""
    return (f"'{region}' is not {_CLOUD_NAMES[platform]} region name{looks}; "
            f"{platform} regions look like {form[1]}")


def region_match_key(region: str) -> str:
    """Looser form used to compare regions typed by people: letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", region.lower())


@dataclass(frozen=True, eq=False)
class Target:
    """One place a machine image is built: a cloud platform, a region and its resources."""

    id: str
    platform: str
    region: str
    raw: dict[str, Any]

    @property
    def group(self) -> str | None:
        """The Azure resource group (`group`)."""
        return self.raw.get("group")

    @property
    def project(self) -> str | None:
        """The Google project its images are built in (`project`)."""
        return self.raw.get("project") or None

    @property
    def zone(self) -> str | None:
        """The Google zone its builder boots in (`zone`)."""
        return self.raw.get("zone") or None

    def zone_in(self, region: str) -> str:
        """The Google zone machines serving `region` run in: the target's `zone` when it is
        one of that region's, else `<region>-b` (a region the target copies its image to)."""
        zone = self.zone or ""
        return zone if zone.startswith(f"{region}-") else f"{region}-{GOOGLE_DEFAULT_ZONE}"

    @property
    def bucket(self) -> str | None:
        """The bucket a disk image is imported from (`bucket`: S3, Cloud Storage)."""
        return self.raw.get("bucket") or None

    @property
    def gallery(self) -> str | None:
        """The Azure Compute Gallery it publishes to (`gallery`), None for managed images."""
        return self.raw.get("gallery") or None

    @property
    def network(self) -> dict[str, Any]:
        """The Azure network section (`network`: name, prefix, dns, subnet, flow, public-ip)
        as written; empty when the target has none."""
        return self.raw.get("network") or {}

    @property
    def public_ip(self) -> bool:
        """Whether the Azure builder VM gets a public IP (`network.public-ip`)."""
        return bool(self.network.get("public-ip"))

    @property
    def hyperv(self) -> str:
        """The Hyper-V generation of its Azure images (`machine.hyperv`, default `V1`)."""
        return str((self.raw.get("machine") or {}).get("hyperv") or "V1").upper()

    @property
    def bootstrap_executions(self) -> list[dict[str, Any]]:
        """The executions its builder runs (`bootstrap.executions`), in order."""
        return list((self.raw.get("bootstrap") or {}).get("executions") or ())

    @cached_property
    def copies(self) -> tuple[str, ...]:
        """The regions the target's image is copied to (`copies`), in canonical spelling."""
        return tuple(normalise_region(str(c)) for c in self.raw.get("copies") or ())

    @property
    def disks(self) -> tuple[dict[str, Any], ...]:
        """The machine's disks (`disk`), the OS disk among them."""
        return tuple(self.raw.get("disk") or ())

    @property
    def os_disk(self) -> dict[str, Any]:
        """The disk with `os: true` (empty when the target names none)."""
        return next((d for d in self.disks if d.get("os")), {})

    @property
    def tags(self) -> dict[str, str]:
        """The target's `tag` list as names and values (values as text)."""
        return {str(t["name"]): str(t["value"]) for t in self.raw.get("tag") or ()}

    @property
    def machine_size(self) -> str | None:
        """The machine size builders and workers run on: `machine.type`, else `machine.format`
        filled with `machine.cpu` (default 2: `Standard_DS{0}_v2` is `Standard_DS2_v2`); None
        when the target gives neither."""
        machine = self.raw.get("machine") or {}
        if machine.get("type"):
            return str(machine["type"])
        if machine.get("format"):
            return str(machine["format"]).format(machine.get("cpu", 2))
        return None

    @property
    def builder_machine_size(self) -> str:
        """The machine its builder runs on: `machine_size`, else the platform's
        BUILDER_MACHINE_SIZES entry."""
        return self.machine_size or BUILDER_MACHINE_SIZES[self.platform]

    def disk_type(self, disk: dict[str, Any]) -> str:
        """The cloud's disk type of one entry of its `disk`, builder and workers alike: on
        Azure the managed disk SKU (`azure_disk_sku`), elsewhere the `variant` as written,
        else the platform's DEFAULT_DISK_TYPES entry."""
        if self.platform == "azure":
            return azure_disk_sku(disk)
        return disk.get("variant", DEFAULT_DISK_TYPES[self.platform])

    @property
    def storage(self) -> str | None:
        """The Azure storage account a VHD from elsewhere is copied into for this target: its
        `storage`, else the one cloud-image-builder's builder used while its config named none
        (until April 2021: `sa` and the resource group's name without `rg-` and dashes, as
        posh-minions-managed's New-CloudInstanceFromImageExport derived it), where that is a
        valid account name. None on other clouds."""
        if named := self.raw.get("storage"):
            return named
        if self.platform != "azure" or not self.group:
            return None
        derived = "sa" + self.group.replace("rg-", "").replace("-", "")
        return derived if STORAGE_ACCOUNT.fullmatch(derived) else None


@dataclass(frozen=True, eq=False)
class Pool:
    """A worker-manager pool `domain/variant`, fed by the images of one key."""

    domain: str
    variant: str
    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return pool_id(self.domain, self.variant)

    @property
    def platform(self) -> str | None:
        """The cloud its workers run on (`platform`); None: its key's only one."""
        return self.raw.get("platform")

    @property
    def provider(self) -> str:
        """The worker-manager provider that runs its workers (`provider`)."""
        return str(self.raw["provider"])

    @property
    def owner(self) -> str | None:
        """Who worker-manager emails about it (`owner`); None when the config names none."""
        owner = self.raw.get("owner")
        return owner if isinstance(owner, str) and owner else None

    @property
    def capacity(self) -> tuple[int, int]:
        """Its `(minimum, maximum)` workers (`capacity`; defaults DEFAULT_MIN_CAPACITY and
        DEFAULT_MAX_CAPACITY), as written: pool rendering caps per-PR pools."""
        capacity = self.raw.get("capacity") or {}
        return (capacity.get("minimum", DEFAULT_MIN_CAPACITY),
                capacity.get("maximum", DEFAULT_MAX_CAPACITY))

    @property
    def registration_timeout(self) -> int:
        """Seconds from a worker's request to `registerWorker` (`timeout.registration`)."""
        return (self.raw.get("timeout") or {}).get("registration",
                                                   DEFAULT_REGISTRATION_TIMEOUT)

    @property
    def reregistration_timeout(self) -> int:
        """Seconds a worker's credentials last (`timeout.reregistration`)."""
        return (self.raw.get("timeout") or {}).get("reregistration",
                                                   DEFAULT_REREGISTRATION_TIMEOUT)

    @property
    def spot(self) -> bool:
        """Whether its workers are spot machines (`lifecycle: spot`)."""
        return self.raw.get("lifecycle") == "spot"

    @cached_property
    def locations(self) -> tuple[str, ...]:
        """Its locations in canonical spelling (computed once: the graph asks per target)."""
        return tuple(normalise_region(loc) for loc in self.raw.get("locations", ()))


@dataclass(frozen=True)
class LogRule:
    """A line a builder's logs must have before its image is captured (the predecessor's
    `validation.instance.log`): one written by `program`, matching `match` (a regular
    expression, searched). Checked by images/validation.py; not an image input."""

    program: str
    match: str

    def to_json(self) -> dict[str, str]:
        return {"program": self.program, "match": self.match}


@dataclass(frozen=True)
class ImageTest:
    """A smoke test of a captured image (`validation.image.tests`, or the environment's
    `image-tests`): `commands` run in the image's shell on an instance booted from the image;
    it passes when they exit 0 and, with `match`, their output matches it. Not an image
    input: a changed test runs again on the same image (docs/validation.md)."""

    name: str
    commands: tuple[str, ...]
    match: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "commands": list(self.commands)}
        if self.match is not None:
            data["match"] = self.match
        return data


def image_tests_of(entries: Any) -> tuple[ImageTest, ...]:
    """The tests of validated config entries (`validation.image.tests` items)."""
    return tuple(ImageTest(e["name"], tuple(e["commands"]), e.get("match"))
                 for e in entries or ())


@dataclass(frozen=True)
class Notify:
    """Who is told when a task of a key fails: email addresses and the resolutions
    (`NOTIFY_EVENTS`) they hear about. Not an image input: no digest covers it."""

    emails: tuple[str, ...]
    events: tuple[str, ...] = NOTIFY_EVENTS


@dataclass(frozen=True, eq=False)
class ImageKey:
    """One image definition: the file `<key>.yaml`."""

    name: str
    file: str
    raw: dict[str, Any]
    targets: tuple[Target, ...]
    pools: tuple[Pool, ...]

    @property
    def image(self) -> dict[str, Any]:
        return self.raw["image"]

    @property
    def os_family(self) -> str:
        """`windows` or `linux` (`os_family`)."""
        return os_family(self.image)

    @property
    def iso(self) -> dict[str, Any] | None:
        return self.raw.get("iso")

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(t.platform for t in self.targets)

    def target(self, target_id: str) -> Target:
        return next(t for t in self.targets if t.id == target_id)

    @property
    def log_rules(self) -> tuple[LogRule, ...]:
        """The lines its builders' logs must have (`validation.instance.log`)."""
        rules = ((self.raw.get("validation") or {}).get("instance") or {}).get("log") or ()
        return tuple(LogRule(r["program"], r["match"]) for r in rules)

    @property
    def log_programs(self) -> tuple[str, ...]:
        """The programs whose builder log lines are published apart (`log`, cloud-image-
        builder's list of the programs it fetched the builder's logs of)."""
        return tuple(dict.fromkeys(self.raw.get("log") or ()))

    def image_tests(self, environment: Environment | None) -> tuple[ImageTest, ...]:
        """Its smoke tests in `environment`: its own `validation.image.tests` when it names
        them (an empty list says it has none), else the environment's for its OS family."""
        image = (self.raw.get("validation") or {}).get("image") or {}
        if "tests" in image:
            return image_tests_of(image["tests"])
        return environment.tests_for(self.os_family) if environment is not None else ()

    def pool_platform(self, pool: Pool) -> str | None:
        """The cloud whose images `pool` runs: its `platform`, else the key's only one; None
        when that cannot be told."""
        if pool.platform is not None:
            return pool.platform
        return next(iter(self.platforms)) if len(self.platforms) == 1 else None

    def serving_target(self, pool: Pool, region: str) -> Target | None:
        """The target whose image `pool` runs in `region` (the one rule every part uses):
        on the pool's platform, in that region; of several there (one resource group per pool
        domain, as cloud-image-builder's win2012), the one whose group ends in `-<domain>`,
        else the first; in a region no target is in, the target that copies its image there
        (`copies`). None when nothing serves it."""
        platform = self.pool_platform(pool)
        on_platform = [t for t in self.targets if t.platform == platform]
        candidates = [t for t in on_platform if t.region == region] or [
            t for t in on_platform
            if region in t.copies]
        for target in candidates:
            if (target.group or "").endswith(f"-{pool.domain}"):
                return target
        return candidates[0] if candidates else None

    def serving_targets(self, pool: Pool) -> tuple[Target, ...]:
        """The targets whose images `pool` runs, one per location (`serving_target`), each
        once, in the order of the key's targets."""
        serving = {t.id for region in pool.locations
                   if (t := self.serving_target(pool, region)) is not None}
        return tuple(t for t in self.targets if t.id in serving)

    @cached_property
    def notify(self) -> Notify:
        """The key's `notify` setting; without `notify.email`, the `owner` addresses of its
        pools (in order, each once; an owner that is not an address is left out)."""
        setting = self.raw.get("notify") or {}
        emails = setting.get("email")
        if emails is None:
            emails = [p.owner for p in self.pools if p.owner and EMAIL.match(p.owner)]
        events = setting.get("on")
        return Notify(tuple(dict.fromkeys(emails)),
                      NOTIFY_EVENTS if events is None else tuple(dict.fromkeys(events)))


@dataclass(frozen=True)
class Signing:
    """How an environment's release records are signed: the Taskcluster secret holding the
    private key, and the repository path of the armored public key; both may say `{level}`
    (docs/signing.md)."""

    secret: str
    public_key: str


@dataclass(frozen=True)
class SourceMirror:
    """Where an environment's disk-image tasks look for sources first: an S3 bucket holding
    each source under `sha256/<its SHA-256>` (docs/images.md)."""

    platform: str
    bucket: str

    def key(self, sha256: str) -> str:
        """The object name of the source whose SHA-256 is `sha256`."""
        return f"sha256/{sha256.lower()}"


@dataclass(frozen=True)
class Environment:
    """A Taskcluster deployment the repository is wired to."""

    name: str
    root_url: str
    description: str = ""
    pull_requests: bool = False
    signing: Signing | None = None
    source_mirror: SourceMirror | None = None
    # Whether pull-request graphs carry the keys' notify routes too (docs/notify.md).
    notify_pull_requests: bool = False
    # The clouds this environment builds on (`platforms` in environments.yaml); None: all.
    platforms: frozenset[str] | None = None
    # Smoke tests of its images by OS family (`image-tests`), for keys naming none.
    image_tests: tuple[tuple[str, tuple[ImageTest, ...]], ...] = ()
    # The Google project its promoted Google images are copied into (`google.project`); None:
    # a promotion serves Google pools from the project the release's images are in.
    google_project: str | None = None

    def tests_for(self, family: str) -> tuple[ImageTest, ...]:
        """The environment's smoke tests of images of OS `family` (`windows`, `linux`)."""
        return dict(self.image_tests).get(family, ())


# cloud-image-builder hard-coded its two deployments; a config without environments.yaml gets them.
DEFAULT_ENVIRONMENTS = (
    Environment("production", "https://firefox-ci-tc.services.mozilla.com",
                "cloud-image-builder's default production deployment"),
    Environment("staging", "https://stage.taskcluster.nonprod.cloudops.mozgcp.net",
                "cloud-image-builder's default staging deployment", pull_requests=True),
)


@dataclass(frozen=True, eq=False)
class SharedInputs:
    """The shared sysprep inputs; each file is optional and empty when absent."""

    files: dict[str, Any] = field(default_factory=dict)

    def entries(self, name: str) -> Any:
        default: Any = {} if name == "product-keys" else []
        value = self.files.get(name)
        return default if value is None else value


@dataclass(frozen=True, eq=False)
class Fleet:
    """Everything in one config directory."""

    keys: dict[str, ImageKey]
    shared: SharedInputs
    environments: dict[str, Environment]
    # cloud-image-builder's repository-level switches, beside the config directory:
    # `.platforms.yml` (the clouds built on) and `.environments.yml` (the environments
    # decisions run in); None where the repository has no such file.
    enabled_platforms: frozenset[str] | None = None
    enabled_environments: frozenset[str] | None = None
    # What `enabled_platforms` was read from, as problems and skipped targets name it.
    platforms_from: str = ".platforms.yml"

    def platform_disabled(self, platform: str, environment: str | None = None) -> str | None:
        """Why the repository (`.platforms.yml`) or the environment (its `platforms`) does
        not build on `platform`; None when it does."""
        if self.enabled_platforms is not None and platform not in self.enabled_platforms:
            return (f"{platform} is not enabled in this repository ({self.platforms_from}: "
                    f"{', '.join(sorted(self.enabled_platforms)) or 'none'})")
        settings = self.environments.get(environment) if environment else None
        if settings is not None and settings.platforms is not None and \
                platform not in settings.platforms:
            return (f"{platform} is not enabled in environment {environment} "
                    f"(environments.yaml platforms: "
                    f"{', '.join(sorted(settings.platforms)) or 'none'})")
        return None

    def environment_disabled(self, environment: str) -> str | None:
        """Why decisions in `environment` build nothing (`.environments.yml`); None."""
        if self.enabled_environments is not None and environment not in \
                self.enabled_environments:
            return (f"environment {environment} is not enabled in this repository "
                    f"(.environments.yml: {', '.join(sorted(self.enabled_environments))})")
        return None

    @cached_property
    def pools(self) -> dict[str, Pool]:
        return {p.id: p for k in self.keys.values() for p in k.pools}

    @cached_property
    def regions(self) -> tuple[str, ...]:
        """Every region a target or pool names, in canonical spelling."""
        names = {t.region for k in self.keys.values() for t in k.targets}
        names |= {loc for p in self.pools.values() for loc in p.locations}
        return tuple(sorted(names))

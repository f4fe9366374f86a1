"""JSON Schemas (draft 2020-12) of the config files.

They describe cloud-image-builder's format as its real files use it, plus our extensions
(marked "extension" below): AWS and GCP targets, base images, source images, checksums and
environments. Every object forbids unknown fields so that a typo is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Any

PLATFORMS = ("amazon", "azure", "google")


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


STR = {"type": "string"}
NONEMPTY = {"type": "string", "minLength": 1}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
OPT_STR = {"type": ["string", "null"]}
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
PLATFORM = {"enum": list(PLATFORMS)}

# Where a shared sysprep input applies: every listed criterion must match the image.
CRITERIA = _obj({
    "cloud": _list({"enum": [*PLATFORMS, "url"]}),
    "os": _list(STR),
    "architecture": _list(STR),
    "gpu": _list(BOOL),
})

# A file to fetch: a bucket object on a cloud, or (`platform: url`) an https URL.
SOURCE = _obj({
    "platform": {"enum": [*PLATFORMS, "url"]},
    "bucket": STR,
    "key": STR,
    "url": {"type": "string", "pattern": "^https?://"},
    "sha256": SHA256,  # extension
    "format": STR,  # extension: qcow2, raw, vhd, vhdx, vmdk
})
SOURCE["anyOf"] = [{"required": ["url"]}, {"required": ["platform", "key"]}]

PARTITION = _obj({
    "id": INT, "type": _obj({"name": STR, "id": INT}), "size": INT, "active": BOOL,
    "extend": BOOL, "format": STR, "label": STR, "letter": STR,
})

IMAGE = _obj({
    "os": NONEMPTY, "edition": STR, "language": STR, "architecture": NONEMPTY,
    "timezone": OPT_STR, "hostname": OPT_STR, "gpu": BOOL, "owner": STR, "organization": STR,
    "partition": STR, "format": STR, "type": STR, "size": INT, "rdp": BOOL, "obfuscate": BOOL,
    "reseal": _obj({"mode": STR, "shutdown": BOOL}),
    "generalize": _obj({"mode": STR, "shutdown": BOOL}),
    "reboot": INT,
    # predecessor form (June to August 2020): `network: Home`, the network location alone
    "network": {"oneOf": [NONEMPTY, _obj({
        "location": STR,
        "dns": _obj({"domain": OPT_STR, "suffixes": {"type": ["array", "null"], "items": STR},
                     "devolution": BOOL}),
        "interfaces": _list(_obj({
            "alias": STR,
            "dns": _obj({"domain": OPT_STR, "dynamic": BOOL, "register": BOOL,
                         "search": _list(STR)}),
        })),
    })]},
    "disks": _list(_obj({"id": INT, "wipe": BOOL, "partitions": _list(PARTITION)})),
    # Where the built disk image is stored.
    # Azure: `storage` (the account), `bucket` (the container, default `disk-images`) and
    # `region` (extension; default: the region of the key's target with that `storage`).
    "target": _obj({"platform": PLATFORM, "bucket": STR, "storage": STR, "group": STR,
                    "region": NONEMPTY}, ("platform",)),
    # extension: a source disk image (e.g. a Linux cloud image) converted instead of an ISO.
    "source": SOURCE,
    # extension: start machine images from a cloud's own base image instead of a disk image.
    "base": _obj({
        "amazon": {"oneOf": [
            _obj({"id": {"type": "string", "pattern": "^ami-[0-9a-f]+$"}}, ("id",)),
            _obj({"owner": NONEMPTY, "name": NONEMPTY}, ("owner", "name")),
        ]},
        "azure": _obj({"publisher": NONEMPTY, "offer": NONEMPTY, "sku": NONEMPTY,
                       "version": STR}, ("publisher", "offer", "sku")),
        "google": _obj({"project": NONEMPTY, "family": STR, "image": STR}, ("project",)),
    }),
}, ("os", "architecture"))

ISO = _obj({"source": SOURCE, "wimindex": INT, "sha256": SHA256}, ("source",))

POOL = _obj({
    "domain": NONEMPTY, "variant": NONEMPTY,
    # predecessor form (January 2020): the pool named as one `<domain>/<variant>` string
    "id": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
    "capacity": _obj({"minimum": {"type": "integer", "minimum": 0},
                      "maximum": {"type": "integer", "minimum": 0}}),
    "timeout": _obj({"registration": INT, "reregistration": INT}),
    "locations": {"type": "array", "items": NONEMPTY, "minItems": 1},
    # predecessor form (May 2020): worker-manager's own lifecycle object in place of the word
    "lifecycle": {"oneOf": [STR, _obj({"registrationTimeout": INT,
                                       "reregistrationTimeout": INT})]},
    # predecessor form (May 2020): the timeouts as worker-manager spells them, on the pool
    "registrationTimeout": INT, "reregistrationTimeout": INT,
    "owner": STR, "provider": NONEMPTY, "platform": PLATFORM,
}, ("locations", "provider"))
POOL["oneOf"] = [{"required": ["domain", "variant"]}, {"required": ["id"]}]

_RULE_FIELDS = ("name", "description", "access", "protocol", "direction", "priority",
                "sourceAddressPrefix", "sourcePortRange", "destinationAddressPrefix",
                "destinationPortRange")
# Older cloud-image-builder files spell rule fields in PascalCase; both load.
RULE = _obj({
    **{f: {} for f in _RULE_FIELDS},
    **{f[0].upper() + f[1:]: {} for f in _RULE_FIELDS},
}, ())

COMMAND = {"oneOf": [STR, {"type": "null"},
                     _obj({"format": STR, "tokens": {**_list(STR), "minItems": 1}},
                          ("tokens",))]}
# What cloud-image-builder's configs tested, and what the bootstrap does with it
# (images/bootstrap.py): the output must match `std.out.match`; `status.code.match` says the
# execution stops the machine itself (the VM state cloud-image-builder polled for).
# predecessor form (April 2020): `like`, a PowerShell `-like` wildcard (forms.py)
STD_OUT = _obj({"match": NONEMPTY, "like": NONEMPTY})
STD_OUT["oneOf"] = [{"required": ["match"]}, {"required": ["like"]}]
STOP_STATES = ["stopped", "PowerState/stopped", "deallocated", "PowerState/deallocated",
               "TERMINATED"]  # Google's word for a stopped instance
EXECUTION = _obj({
    "name": NONEMPTY, "shell": NONEMPTY, "commands": _list(COMMAND),
    "test": _obj({"std": _obj({"out": STD_OUT}, ("out",)),
                  "status": _obj({"code": _obj({"match": {"enum": STOP_STATES}}, ("match",))},
                                 ("code",))}),
    "on": _obj({"success": STR, "failure": STR}),
}, ("name", "shell"))

TARGET = _obj({
    "platform": PLATFORM, "region": NONEMPTY, "group": STR, "storage": STR,
    "bucket": STR, "project": STR, "zone": STR,  # extensions (AWS, GCP)
    "copies": _list(NONEMPTY),  # extension (AWS): regions the built image is copied to
    # extension (Azure): publish to this Compute Gallery of the target's group (a replicated
    # image version) instead of a managed image
    "gallery": {"type": "string", "minLength": 1, "maxLength": 80},
    "hostname": _obj({"format": STR, "slug": _obj({"type": STR, "length": INT})}),
    "machine": _obj({"cpu": INT, "ram": INT, "format": STR, "hyperv": STR, "agent": STR,
                     "type": STR}),  # `type`: extension, an explicit instance type
    "agent": STR, "diagnostics": STR,
    "disk": _list(_obj({"os": BOOL, "source": STR, "variant": STR, "size": INT, "caching": STR,
                        "create": STR, "label": STR, "letter": STR, "name": STR})),
    "network": _obj({
        "name": STR, "prefix": STR, "dns": _list(STR),
        "public-ip": BOOL,  # extension (Azure): give the builder VM a public IP
        "subnet": _obj({"name": STR, "prefix": STR}),
        "flow": _obj({"name": STR, "rules": _list(RULE)}),
    }),
    "tag": {"type": ["array", "null"],
            "items": _obj({"name": NONEMPTY, "value": {"type": ["string", "integer"]}},
                          ("name", "value"))},
    "bootstrap": _obj({"executions": {"type": ["array", "null"], "items": EXECUTION}}),
}, ("platform", "region"))

LOG_RULE = _obj({"program": NONEMPTY, "match": NONEMPTY}, ("program", "match"))
# A smoke test of a captured image: its commands run in the image's shell (PowerShell on
# Windows, bash on Linux) on an instance booted from the image; it passes when they exit 0
# and, with `match`, their output matches it (a regular expression).
IMAGE_TEST = _obj({"name": NONEMPTY, "commands": {"type": "array", "items": NONEMPTY,
                                                  "minItems": 1},
                   "match": NONEMPTY}, ("name", "commands"))

# extension: who hears about the key's failed tasks (docs/notify.md). Addresses are checked in
# load.py (a pattern here would need escapes, which keep the key schema off jsonschema-rs).
NOTIFY = _obj({
    "email": {"type": "array", "items": NONEMPTY, "uniqueItems": True},
    "on": {"type": "array", "items": {"enum": ["failed", "exception"]}, "minItems": 1,
           "uniqueItems": True},
})

KEY = _obj({
    "image": IMAGE,
    "iso": ISO,
    # predecessor form (January 2020): `pool` one mapping, the key's only pool
    "manager": _obj({"pool": {"oneOf": [_list(POOL), POOL]}}),
    "target": {"type": "array", "items": TARGET, "minItems": 1},
    "log": _list(STR),
    # The predecessor's rules: a line the builder's logs must have, by program (images/
    # validation.py); `image.tests`: smoke tests of the captured image (docs/validation.md).
    "validation": _obj({
        "instance": _obj({"log": _list(LOG_RULE)}),
        "image": _obj({"tests": _list(IMAGE_TEST)}),
    }),
    "notify": NOTIFY,  # extension
}, ("image", "target"))

_UNATTEND_COMMAND = _obj({
    "description": STR, "command": NONEMPTY, "pass": STR, "synchronicity": STR,
    "priority": INT, "target": CRITERIA,
    # predecessor form (December 2019 to May 2020): commands grouped under one `target`
    # (in its last days, May 2020, each command carried its own)
    "unattend": _list(_obj({"description": STR, "command": NONEMPTY, "target": CRITERIA},
                           ("command",))),
})
_UNATTEND_COMMAND["oneOf"] = [{"required": ["command"]}, {"required": ["unattend"]}]

# Shared sysprep inputs, one schema per file.
SHARED = {
    "disable-windows-service": _list(_obj({"name": NONEMPTY, "target": CRITERIA}, ("name",))),
    "drivers": _list(_obj({"name": NONEMPTY, "infpath": STR, "extract": BOOL,
                           "target": CRITERIA, "sources": _list(SOURCE)}, ("name",))),
    "packages": _list(_obj({
        "name": NONEMPTY, "savepath": STR, "extract": BOOL, "target": CRITERIA,
        "sources": _list(SOURCE),
        "unattend": _list(_obj({"description": STR, "command": NONEMPTY, "pass": STR,
                                "synchronicity": STR, "priority": INT, "reboot": STR},
                               ("command",))),
    }, ("name",))),
    "product-keys": {"type": "object",
                     "additionalProperties": {"type": "object",
                                              "additionalProperties": NONEMPTY}},
    "unattend-commands": _list(_UNATTEND_COMMAND),
}

# extension: the Taskcluster deployments this repository is wired to.
ENVIRONMENTS = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "^[a-z][a-z0-9-]*$"},
    "additionalProperties": _obj({
        "root-url": {"type": "string", "pattern": "^https?://[^/\\s]+(/[^\\s]*)?$"},
        "description": STR,
        # Pull requests build images and per-PR pools only in environments that say so.
        "pull-requests": BOOL,
        # Pull-request graphs carry the keys' notify routes only where this is true.
        "notify-pull-requests": BOOL,
        # The clouds this environment builds on (default: every one the config has targets on).
        "platforms": _list(PLATFORM),
        # Release records are signed with the key in `secret` and checked against the armored
        # public key at `public-key` (from the repository root); both may say `{level}`.
        "signing": _obj({
            "secret": {"type": "string", "pattern": r"^(?:[\x21-\x7a|~]|\{level\})+$"},
            "public-key": {"type": "string", "pattern": r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))"
                                                        r"(?:[^{}\s\\]|\{level\})+$"},
        }, ("secret", "public-key")),
        # Disk-image tasks fetch a source with a `sha256` from `s3://<bucket>/sha256/<sha256>`
        # first, and from where its config says only when the mirror lacks it (docs/images.md).
        "source-mirror": _obj({"platform": {"enum": ["amazon"]}, "bucket": NONEMPTY},
                              ("platform", "bucket")),
        # Smoke tests of every image of an OS family built for this environment, for keys
        # that do not name their own (`validation.image.tests`).
        "image-tests": _obj({"windows": _list(IMAGE_TEST), "linux": _list(IMAGE_TEST)}),
        # The Google project the environment's promoted Google images live in: `cib promote`
        # copies a release's Google images from another project into it (docs/lifecycle.md).
        "google": _obj({"project": NONEMPTY}, ("project",)),
    }, ("root-url",)),
}

"""`cib image disk|machine|tag` (what the image tasks run) and `cib release verify`.

Exit statuses: 0 done; 2 bad input (config, arguments, a record that fails verification);
3 the build failed in the cloud (e.g. the bootstrap never stopped the builder); 75 a transient
cloud error (quota, capacity, throttling): the image tasks' definitions retry on 75.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from . import manifest
from .bounds import PULL_REQUEST
from .errors import CibError
from .images.context import BuildContext, load_context, read_json_file

DEFAULT_CONFIG_DIR = "config"
DEFAULT_ARTIFACTS = "artifacts"


def cmd_release_verify(args: argparse.Namespace) -> int:
    """Check a release record's fields, its sha256 seal and, given a public key, its
    signature; exit 2 when it fails."""
    record = manifest.parse_release(read_json_file(args.file), str(args.file))
    manifest.verify(record)
    signed = ", signature not checked (give --public-key)" if record.signature else ""
    if args.public_key is not None:
        from .signing import read_public_key, verify_release

        signer = verify_release(record, read_public_key(args.public_key), str(args.file))
        signed = f", signed by {signer}"
    platforms = sorted({i.platform for i in record.images})
    print(f"{args.file}: OK: release of {record.key} at {record.config_commit[:12]}, "
          f"{len(record.images)} image{'s' if len(record.images) != 1 else ''} "
          f"({', '.join(platforms)}), sha256 {record.sha256}{signed}")
    return 0


def _context(args: argparse.Namespace) -> BuildContext:
    return load_context(args.key, args.config_dir, artifacts=args.artifacts,
                        pull_request=args.pull_request,
                        keep_resources=getattr(args, "keep_resources", False))


def cmd_image_disk(args: argparse.Namespace) -> int:
    """Build the disk image of a key and write public/disk-image.json."""
    import requests

    from .clouds.aws import S3
    from .images.disk import DiskBuild, build_disk_image

    ctx = _context(args)
    azure = None
    if (ctx.key.image.get("target") or {}).get("platform") == "azure":
        from .clouds.azure import Azure

        azure = Azure.from_environment()
    with tempfile.TemporaryDirectory(prefix="cib-disk-", dir=args.work_dir) as work:
        record = build_disk_image(ctx, DiskBuild(
            s3=S3(), http=requests.Session(), work_dir=Path(work),
            convert_command=args.convert_command, azure=azure))
    ctx.progress.say(f"done: {record.location} ({record.size} bytes, sha256 {record.sha256})")
    return 0


def _disk_record(args: argparse.Namespace) -> manifest.DiskImageRecord | None:
    """The disk-image record: `--disk-image FILE`, or the artifact of the disk-image task
    `CIB_DISK_IMAGE_TASK_ID` (never a `.latest` route)."""
    if args.disk_image:
        return manifest.parse_disk_image(read_json_file(args.disk_image), str(args.disk_image))
    task = os.environ.get("CIB_DISK_IMAGE_TASK_ID")
    if not task:
        return None
    import taskcluster

    from .pools import read_artifact
    from .tc import client_options

    data = read_artifact(taskcluster.Queue(client_options()), task,
                         manifest.DISK_IMAGE_ARTIFACT)
    if data is None:
        raise CibError(f"disk-image task {task} has no {manifest.DISK_IMAGE_ARTIFACT}")
    return manifest.parse_disk_image(data, f"task {task} {manifest.DISK_IMAGE_ARTIFACT}")


def cmd_image_machine(args: argparse.Namespace) -> int:
    """Build (or reuse) the machine image of one target and write public/machine-image.json."""
    from .selection import not_built

    ctx = _context(args)
    target = ctx.target(args.target)
    if reason := ctx.fleet.platform_disabled(target.platform, ctx.environment or None):
        raise CibError(f"{target.id}: {reason}; the task graph has no machine-image task "
                       "for it")
    if target.platform == "amazon":
        from .clouds.aws import EC2
        from .images import aws_machine

        record = aws_machine.build_machine_image(ctx, aws_machine.AwsBuild(
            ec2=EC2(target.region), target=target, overwrite=args.overwrite,
            disk_record=_disk_record(args), timeouts=aws_machine.Timeouts(
                bootstrap=args.bootstrap_timeout, interval=args.poll_interval)))
    elif target.platform == "azure":
        from .clouds.azure import Azure
        from .images import azure_machine

        record = azure_machine.build_machine_image(ctx, azure_machine.AzureBuild(
            azure=Azure.from_environment(), target=target, overwrite=args.overwrite,
            disk_record=_disk_record(args), timeouts=azure_machine.Timeouts(
                bootstrap=args.bootstrap_timeout, interval=args.poll_interval)))
    else:  # the graph has no task for it (selection.BUILDABLE_PLATFORMS)
        raise CibError(f"{target.id}: {not_built(target.platform) or 'no builder'}; "
                       "the task graph has no machine-image task for it")
    ctx.progress.say(f"done: {record.image_id} {record.image_name} in {record.region}"
                     + "".join(f", {r} {i}" for r, i in record.copies))
    return 0


def cmd_image_tag(args: argparse.Namespace) -> int:
    """Tag the key's machine images of this graph and write public/release.json."""
    import boto3

    import taskcluster

    from .clouds.aws import EC2
    from .images.tag import NothingBuilt, tag_release
    from .signing import tag_signer
    from .tc import client_options

    ctx = load_context(args.key, args.config_dir, artifacts=args.artifacts)
    sign = tag_signer(ctx.fleet, ctx.environment, args.config_dir, ctx.progress.say)
    session = boto3.session.Session()

    @functools.cache
    def azure() -> Any:  # only when a record is of an Azure image
        from .clouds.azure import Azure

        return Azure.from_environment()

    try:
        release = tag_release(ctx, taskcluster.Queue(client_options()),
                              functools.cache(lambda region: EC2(region, session)), sign, azure)
    except NothingBuilt as nothing:
        Path(args.artifacts).mkdir(parents=True, exist_ok=True)  # the task's artifact dir
        ctx.progress.say(f"done: {nothing}")
        return 0
    ctx.progress.say(f"done: release {release.sha256} of {len(release.images)} image"
                     f"{'s' if len(release.images) != 1 else ''}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, help="image key (config/<key>.yaml)")
    parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                        help="config directory (default: config)")
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, metavar="DIR",
                        help="where to write the records; the task publishes it as public/ "
                             "(default: artifacts)")
    parser.add_argument("--pull-request", type=PULL_REQUEST, metavar="N",
                        help="build under pull-request names (<key>-pr<N>-<digest>)")


EXIT_STATUSES = """exit statuses:
  0   done (or an image with this digest already existed and was reused)
  2   bad input: unknown key or target, bad config, a checksum that does not match
  3   the build failed in the cloud (a wait timed out, an image failed); resources cleaned up
  75  transient cloud error (quota, capacity, throttling): the task is retried
"""


TAG_EXIT_STATUSES = """exit statuses:
  0   released: every AWS and Azure image tagged (Google ones named), public/release.json written;
      or every build failed, so nothing is released (those builds report the failure)
  2   no dependency left a machine-image record of the key, or a record is malformed; the
      environment signs releases and its signing secret or public key cannot be used
  3   an image a record names is not in its region
  75  transient cloud error (throttling, a service error): running the task again may succeed
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib image ...` and `cib release ...` on the `cib` command."""
    image = commands.add_parser("image", help="build images (what the image tasks run)")
    image_commands = image.add_subparsers(dest="image_command", required=True,
                                          metavar="SUBCOMMAND")
    disk = image_commands.add_parser(
        "disk", help="build a key's disk image and write public/disk-image.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_doc("images.disk"), epilog=EXIT_STATUSES)
    _common(disk)
    disk.add_argument("--convert-command", default=os.environ.get("CIB_CONVERT_COMMAND"),
                      metavar="COMMAND",
                      help="the worker's ISO -> disk image command, with {iso}, {output}, "
                           "{config} and {format} (default: $CIB_CONVERT_COMMAND)")
    disk.add_argument("--work-dir", help="where to download and convert (default: a "
                                         "temporary directory, removed afterwards)")
    disk.add_argument("--keep-resources", action="store_true",
                      help="accepted for symmetry with `machine`; a disk build leaves nothing")
    disk.set_defaults(func=cmd_image_disk)

    machine = image_commands.add_parser(
        "machine", help="build a target's machine image and write public/machine-image.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="AWS targets:\n\n" + _doc("images.aws_machine")
        + "\n\nAzure targets (credentials: AZURE_SUBSCRIPTION_ID with AZURE_TENANT_ID, "
          "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or a managed identity):\n\n"
        + _doc("images.azure_machine"), epilog=EXIT_STATUSES)
    _common(machine)
    machine.add_argument("--target", required=True,
                         help="target id, e.g. amazon/us-east-1 or azure/centralus (see "
                              "`cib changes`)")
    machine.add_argument("--overwrite", action="store_true",
                         help="build a new image even when one exists for this digest "
                              "(overwrite-machine-image); the existing one is kept")
    machine.add_argument("--keep-resources", action="store_true",
                         help="leave the builder (AWS: instance, volumes, security group, key "
                              "pair; Azure: VM, NIC, public IP, disks) for debugging "
                              "(disable-cleanup)")
    machine.add_argument("--disk-image", type=Path, metavar="FILE",
                         help="the disk-image record to import (default: the artifact of "
                              "task $CIB_DISK_IMAGE_TASK_ID)")
    machine.add_argument("--bootstrap-timeout", type=float, default=3 * 3600,
                         metavar="SECONDS",
                         help="how long the bootstrap may take to stop the builder "
                              "(default: 10800)")
    machine.add_argument("--poll-interval", type=float, default=15.0, metavar="SECONDS",
                         help="how often waits ask the cloud (default: 15)")
    machine.set_defaults(func=cmd_image_machine)

    tag = image_commands.add_parser(
        "tag", help="tag a key's new machine images and write public/release.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_doc("images.tag"), epilog=TAG_EXIT_STATUSES)
    tag.add_argument("--key", required=True, help="image key (config/<key>.yaml)")
    tag.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                     help="config directory (default: config)")
    tag.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, metavar="DIR",
                     help="where to write release.json; the task publishes it as public/ "
                          "(default: artifacts)")
    tag.set_defaults(func=cmd_image_tag)

    release = commands.add_parser("release", help="work with release records")
    release_commands = release.add_subparsers(dest="release_command", required=True,
                                              metavar="SUBCOMMAND")
    verify = release_commands.add_parser(
        "verify", help="check a release record (public/release.json): fields, sha256 seal "
                       "and (with --public-key) signature",
        description="Parses the record strictly and recomputes the SHA-256 of its canonical "
                    "body. Exit 0 when it holds, 2 (with what is wrong) when it does not; pool "
                    "deploys refuse such a record.")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--public-key", type=Path, metavar="FILE",
                        help="also require a valid signature by a key of this armored OpenPGP "
                             "public key file (docs/signing.md)")
    verify.set_defaults(func=cmd_release_verify)


def _doc(module: str) -> str:
    """The steps a builder module documents: its docstring after the first line. Read from the
    source, not imported: every `cib` command builds this parser, and the builders import boto3."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"cib_decision.{module}")
    source = Path(spec.origin).read_text() if spec and spec.origin else ""
    text = ast.get_docstring(ast.parse(source)) or ""
    return text.split("\n", 1)[-1].strip()

"""`cib image disk|machine|test|tag` (what the image tasks run) and `cib release verify`.

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

from .. import manifest
from ..bounds import PULL_REQUEST
from ..errors import CibError
from ..images.context import BuildContext, load_context, read_json_file
from . import DEFAULT_ARTIFACTS, DEFAULT_CONFIG_DIR


def cmd_release_verify(args: argparse.Namespace) -> int:
    """Check a release record's fields, its sha256 seal and, given a public key, its
    signature; exit 2 when it fails."""
    record = manifest.parse_release(read_json_file(args.file), str(args.file))
    manifest.verify(record)
    signed = ", signature not checked (give --public-key)" if record.signature else ""
    if args.public_key is not None:
        from ..signing import read_public_key, verify_release

        signer = verify_release(record, read_public_key(args.public_key), str(args.file))
        signed = f", signed by {signer}"
    tested = _release_tests(record, args)
    platforms = sorted({i.platform for i in record.images})
    print(f"{args.file}: OK: release of {record.key} at {record.config_commit[:12]}, "
          f"{len(record.images)} image{'s' if len(record.images) != 1 else ''} "
          f"({', '.join(platforms)}), {tested}, sha256 {record.sha256}{signed}")
    return 0


def _release_tests(record: manifest.Release, args: argparse.Namespace) -> str:
    """What the release says of its smoke tests; CibError when one failed, or when
    `--config-dir` gives the key tests in the environment and an image has none."""
    asked = False
    if args.config_dir is not None:
        from ..config import DirectorySource, load_fleet
        from ..signing import environment_named

        fleet = load_fleet(DirectorySource(str(args.config_dir)))
        key = fleet.keys.get(record.key)
        if key is None:
            raise CibError(f"{args.file}: the config has no key {record.key}")
        environment = environment_named(fleet, args.environment or "")
        asked = bool(key.image_tests(environment))
    refused = manifest.smoke_test_problems(record, required=asked)
    if refused:
        raise CibError(f"{args.file}: release of {record.key} refused: " + "; ".join(refused))
    ran = [i for i in record.images if i.tests is not None]
    if not ran:
        return "no smoke tests" + (" (the config asks for none)" if args.config_dir else "")
    return (f"smoke tests passed on {len(ran)} of {len(record.images)} image"
            f"{'s' if len(record.images) != 1 else ''}")


def _context(args: argparse.Namespace) -> BuildContext:
    return load_context(args.key, args.config_dir, artifacts=args.artifacts,
                        pull_request=args.pull_request,
                        keep_resources=getattr(args, "keep_resources", False))


def cmd_image_disk(args: argparse.Namespace) -> int:
    """Build the disk image of a key and write public/disk-image.json."""
    import requests

    from ..clouds.aws import S3
    from ..images.disk import DiskBuild, build_disk_image

    ctx = _context(args)
    azure = None
    if (ctx.key.image.get("target") or {}).get("platform") == "azure":
        from ..clouds.azure import Azure

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

    from ..tc import client_options, read_artifact

    data = read_artifact(taskcluster.Queue(client_options()), task,
                         manifest.DISK_IMAGE_ARTIFACT)
    if data is None:
        raise CibError(f"disk-image task {task} has no {manifest.DISK_IMAGE_ARTIFACT}")
    return manifest.parse_disk_image(data, f"task {task} {manifest.DISK_IMAGE_ARTIFACT}")


def cmd_image_machine(args: argparse.Namespace) -> int:
    """Build (or reuse) the machine image of one target and write public/machine-image.json."""
    from ..selection import not_built

    ctx = _context(args)
    target = ctx.target(args.target)
    if reason := ctx.fleet.platform_disabled(target.platform, ctx.environment or None):
        raise CibError(f"{target.id}: {reason}; the task graph has no machine-image task "
                       "for it")
    if target.platform == "amazon":
        from ..clouds.aws import EC2
        from ..images import aws_machine

        record = aws_machine.build_machine_image(ctx, aws_machine.AwsBuild(
            ec2=EC2(target.region), target=target, overwrite=args.overwrite,
            disk_record=_disk_record(args), timeouts=aws_machine.Timeouts(
                bootstrap=args.bootstrap_timeout, interval=args.poll_interval)))
    elif target.platform == "azure":
        from ..clouds.azure import Azure
        from ..images import azure_machine

        record = azure_machine.build_machine_image(ctx, azure_machine.AzureBuild(
            azure=Azure.from_environment(), target=target, overwrite=args.overwrite,
            disk_record=_disk_record(args), timeouts=azure_machine.Timeouts(
                bootstrap=args.bootstrap_timeout, interval=args.poll_interval)))
    elif target.platform == "google":
        from ..clouds.google import Google
        from ..images import google_machine

        record = google_machine.build_machine_image(ctx, google_machine.GoogleBuild(
            google=Google.from_environment(), target=target, overwrite=args.overwrite,
            disk_record=_disk_record(args), s3=_s3_if_needed(ctx), timeouts=
            google_machine.Timeouts(bootstrap=args.bootstrap_timeout,
                                    interval=args.poll_interval)))
    else:  # the graph has no task for it (selection.BUILDABLE_PLATFORMS)
        raise CibError(f"{target.id}: {not_built(target.platform) or 'no builder'}; "
                       "the task graph has no machine-image task for it")
    ctx.progress.say(f"done: {record.image_id} {record.image_name} in {record.region}"
                     + "".join(f", {r} {i}" for r, i in record.copies))
    return 0


def _s3_if_needed(ctx: BuildContext) -> Any:
    """An S3 client when the key's disk image is in S3 (a Google build carries it over)."""
    if (ctx.key.image.get("base") or {}).get("google"):
        return None
    from ..clouds.aws import S3

    return S3()


def cmd_image_test(args: argparse.Namespace) -> int:
    """Run the key's smoke tests on the image one build made; write public/image-test.json."""
    import boto3

    import taskcluster

    from ..clouds.aws import EC2
    from ..images import image_test
    from ..tc import client_options

    ctx = load_context(args.key, args.config_dir, artifacts=args.artifacts,
                       keep_resources=args.keep_resources)
    target = ctx.target(args.target)
    try:
        record = (manifest.parse_machine_image(read_json_file(args.machine_image),
                                               str(args.machine_image))
                  if args.machine_image else
                  image_test.machine_record(taskcluster.Queue(client_options())))
    except image_test.NothingToTest as nothing:
        Path(args.artifacts).mkdir(parents=True, exist_ok=True)  # the task's artifact dir
        ctx.progress.say(f"done: {nothing}")
        return 0
    if target.platform == "amazon":
        session = boto3.session.Session()
        runner = image_test.aws_runner(lambda region: EC2(region, session))
    elif target.platform == "azure":
        from ..clouds.azure import Azure

        runner = image_test.azure_runner(Azure.from_environment())
    elif target.platform == "google":
        from ..clouds.google import Google

        runner = image_test.google_runner(Google.from_environment())
    else:
        raise CibError(f"{target.id}: smoke tests run on AWS, Azure and Google images")
    tested = image_test.run_smoke_tests(ctx, target, record, runner,
                                        image_test.SmokeTestTimeouts(
                                            tests=args.timeout, interval=args.poll_interval))
    ctx.progress.say(f"done: {len(tested.results)} smoke tests of {record.image_id} passed")
    return 0


def cmd_image_tag(args: argparse.Namespace) -> int:
    """Tag the key's machine images of this graph and write public/release.json."""
    import boto3

    import taskcluster

    from ..clouds.aws import EC2
    from ..images.tag import NothingBuilt, tag_release
    from ..signing import tag_signer
    from ..tc import client_options

    ctx = load_context(args.key, args.config_dir, artifacts=args.artifacts)
    sign = tag_signer(ctx.fleet, ctx.environment, args.config_dir, ctx.progress.say)
    session = boto3.session.Session()

    @functools.cache
    def azure() -> Any:  # only when a record is of an Azure image
        from ..clouds.azure import Azure

        return Azure.from_environment()

    @functools.cache
    def google() -> Any:  # only when a record is of a Google image
        from ..clouds.google import Google

        return Google.from_environment()

    try:
        release = tag_release(ctx, taskcluster.Queue(client_options()),
                              functools.cache(lambda region: EC2(region, session)), sign, azure,
                              google)
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


TEST_EXIT_STATUSES = """exit statuses:
  0   every smoke test passed (public/image-test.json written); or the build failed, so there
      is no image to test
  2   bad input: unknown key or target, no tests for the key, a record of another image
  3   a smoke test failed, or the test instance failed in the cloud; resources cleaned up
  75  transient cloud error (quota, capacity, throttling): the task is retried
"""


TAG_EXIT_STATUSES = """exit statuses:
  0   released: every AWS, Azure and Google image tagged, public/release.json written;
      or every build failed, so nothing is released (those builds report the failure)
  2   no dependency left a machine-image record of the key, or a record is malformed; the
      environment signs releases and its signing secret or public key cannot be used
  3   an image a record names is not in its region; or a key with smoke tests has an image
      whose tests failed or did not run: nothing of the key is released
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
        + _doc("images.azure_machine")
        + "\n\nGoogle targets (credentials: GOOGLE_SERVICE_ACCOUNT_KEY, a service account's "
          "JSON key, or Application Default Credentials):\n\n"
        + _doc("images.google_machine"), epilog=EXIT_STATUSES)
    _common(machine)
    machine.add_argument("--target", required=True,
                         help="target id, e.g. amazon/us-east-1, azure/centralus or "
                              "google/us-central1 (see `cib changes`)")
    machine.add_argument("--overwrite", action="store_true",
                         help="build a new image even when one exists for this digest "
                              "(overwrite-machine-image); the existing one is kept")
    machine.add_argument("--keep-resources", action="store_true",
                         help="leave the builder (AWS: instance, volumes, security group, key "
                              "pair; Azure: VM, NIC, public IP, disks; Google: instance, disks) "
                              "for debugging (disable-cleanup)")
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

    test = image_commands.add_parser(
        "test", help="smoke-test one target's new machine image; write public/image-test.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_doc("images.image_test"), epilog=TEST_EXIT_STATUSES)
    _common(test)
    test.add_argument("--target", required=True, help="target id, e.g. amazon/us-east-1")
    test.add_argument("--machine-image", type=Path, metavar="FILE",
                      help="the machine-image record of the image (default: the artifact of "
                           "task $CIB_MACHINE_IMAGE_TASK_ID)")
    test.add_argument("--keep-resources", action="store_true",
                      help="leave the test instance and its resources (disable-cleanup)")
    test.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                      help="how long the tests may take (default: 3600)")
    test.add_argument("--poll-interval", type=float, default=15.0, metavar="SECONDS",
                      help="how often waits ask the cloud (default: 15)")
    test.set_defaults(func=cmd_image_test)

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
                    "body, and refuses a release whose smoke tests failed (or, with "
                    "--config-dir, did not run where the config asks for them). Exit 0 when "
                    "it holds, 2 (with what is wrong) when it does not; pool deploys refuse "
                    "such a record.")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--public-key", type=Path, metavar="FILE",
                        help="also require a valid signature by a key of this armored OpenPGP "
                             "public key file (docs/signing.md)")
    verify.add_argument("--config-dir", type=Path, metavar="DIR",
                        help="also require smoke tests that passed on every image when this "
                             "config gives the key tests (validation.image.tests or the "
                             "environment's image-tests); a failed test is refused anyway")
    verify.add_argument("--environment", default=os.environ.get("CIB_ENVIRONMENT", ""),
                        help="the environment whose tests apply (default: $CIB_ENVIRONMENT, "
                             "else the config's first)")
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

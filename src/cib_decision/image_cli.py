"""`cib image disk|machine|tag` (what the image tasks run) and `cib release verify`.

Exit statuses: 0 done; 2 bad input (config, arguments, a record that fails verification);
3 the build failed in the cloud (e.g. the bootstrap never stopped the builder); 75 a transient
cloud error (quota, capacity, throttling): the image tasks' definitions retry on 75.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import manifest
from .images.context import read_json_file

DEFAULT_CONFIG_DIR = "config"
DEFAULT_ARTIFACTS = "artifacts"


def cmd_release_verify(args: argparse.Namespace) -> int:
    """Check a release record's fields and its sha256 seal; exit 2 when it fails."""
    record = manifest.parse_release(read_json_file(args.file), str(args.file))
    manifest.verify(record)
    platforms = sorted({i.platform for i in record.images})
    print(f"{args.file}: OK: release of {record.key} at {record.config_commit[:12]}, "
          f"{len(record.images)} image{'s' if len(record.images) != 1 else ''} "
          f"({', '.join(platforms)}), sha256 {record.sha256}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib image ...` and `cib release ...` on the `cib` command."""
    release = commands.add_parser("release", help="work with release records")
    release_commands = release.add_subparsers(dest="release_command", required=True,
                                              metavar="SUBCOMMAND")
    verify = release_commands.add_parser(
        "verify", help="check a release record (public/release.json): fields and sha256 seal",
        description="Parses the record strictly and recomputes the SHA-256 of its canonical "
                    "body. Exit 0 when it holds, 2 (with what is wrong) when it does not; pool "
                    "deploys refuse such a record.")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.set_defaults(func=cmd_release_verify)


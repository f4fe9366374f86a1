"""`cib config check` and `cib directives`: the config directory, and the CI directives of a
commit message read against it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CibError

if TYPE_CHECKING:
    from ..config import Fleet


def add_parser(commands: Any) -> None:
    """Add `config` (with `check`) and `directives` to `commands`."""
    config = commands.add_parser("config", help="work with the config directory")
    config_commands = config.add_subparsers(dest="config_command", required=True,
                                            metavar="SUBCOMMAND")
    check = config_commands.add_parser(
        "check", help="validate every config file; problems are listed as FILE:LINE: message")
    check.add_argument("--config-dir", help="config directory (default: the repository's, "
                                            "found from any directory inside it)")
    check.add_argument("--artifacts", type=Path, metavar="DIR",
                       help="also write the problems as the task's GitHub check run shows "
                            "them (github/customCheckRunText.md, "
                            "github/customCheckRunAnnotations.json) under DIR")
    check.set_defaults(func=cmd_config_check)

    directives = commands.add_parser(
        "directives", help="parse CI directive lines of a commit message and print them as JSON")
    directives.add_argument("--config-dir",
                            help="config whose keys, pools, regions and environments may be named "
                                 "(default: the repository's)")
    directives.add_argument("file", nargs="?", default="-", metavar="FILE|-",
                            help="file holding the commit message (default: standard input)")
    directives.set_defaults(func=cmd_directives)


def _load(config_dir: str | None) -> Fleet:
    from ..config import DirectorySource, load_fleet
    from ..config.source import default_config_dir

    return load_fleet(DirectorySource(config_dir or default_config_dir()))


def cmd_config_check(args: argparse.Namespace) -> int:
    from ..config.source import default_config_dir

    args.config_dir = args.config_dir or default_config_dir()
    try:
        fleet = _load(args.config_dir)
        if not fleet.keys:
            raise CibError(f"{args.config_dir}: no image key (a <key>.yaml besides the shared "
                           "files and environments.yaml): is this the config directory?")
    except CibError as error:
        if args.artifacts is not None:  # the untrusted pull request's check run shows it
            from ..checkrun_errors import write_error_report

            write_error_report(error, args.artifacts, Path.cwd())
        raise
    pools = sum(len(k.pools) for k in fleet.keys.values())
    targets = sum(len(k.targets) for k in fleet.keys.values())
    print(f"{args.config_dir}: OK ({len(fleet.keys)} keys, {targets} targets, {pools} pools, "
          f"{len(fleet.environments)} environments)")
    return 0


def cmd_directives(args: argparse.Namespace) -> int:
    from ..directives import Vocabulary, parse_directives

    if args.file == "-":
        message = sys.stdin.read()
    else:
        try:
            message = Path(args.file).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CibError(f"cannot read {args.file}: {exc.strerror}") from None
    directives = parse_directives(message, Vocabulary.from_fleet(_load(args.config_dir)))
    print(json.dumps(directives.to_json(), indent=2))
    return 0

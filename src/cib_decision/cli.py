"""The `cib` command. Thin: parses arguments, calls the pure functions, prints results.

Errors caused by input print as one clear message (file and line, or commit message line)
with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .bounds import PULL_REQUEST
from .errors import CibError, ConfigError

if TYPE_CHECKING:
    from .config import Fleet

DEFAULT_CONFIG_DIR = "config"
# Commands that call clouds: in a task they get the level's cloud credentials (cloudcreds.py).
CLOUD_COMMANDS = ("image", "purge", "gc", "promote", "drift")
# The commands other modules add (module, its `add_*` function, the commands it adds): only the
# module of the command being run is imported, so `cib plan` does not pay for the imports of
# the Taskcluster, cloud and local-deployment commands (about 0.2 s). `cib --help` imports all.
COMMAND_MODULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("decision_cli", "add_parser", ("decision", "action-callback")),
    ("dev_event", "add_parser", ("dev-event",)),
    ("dev_event", "add_release_parser", ("dev-release",)),
    ("image_cli", "add_parser", ("image", "release")),
    ("pool_cli", "add_parser", ("pool",)),
    ("purge_cli", "add_parser", ("purge",)),
    ("gc_cli", "add_parser", ("gc",)),
    ("lifecycle_cli", "add_parser", ("promote", "rollback")),
    ("drift_cli", "add_parser", ("drift",)),
    ("stats_cli", "add_parser", ("stats",)),
    ("devtc.cli", "add_parser", ("dev-taskcluster",)),
    ("devpipeline.cli", "add_parser", ("dev-up",)),
)
OWN_COMMANDS = ("config", "directives", "changes", "plan")


def _load(config_dir: str | None) -> Fleet:
    from .config import DirectorySource, load_fleet
    from .config.source import default_config_dir

    return load_fleet(DirectorySource(config_dir or default_config_dir()))


def cmd_config_check(args: argparse.Namespace) -> int:
    from .config.source import default_config_dir

    args.config_dir = args.config_dir or default_config_dir()
    try:
        fleet = _load(args.config_dir)
        if not fleet.keys:
            raise CibError(f"{args.config_dir}: no image key (a <key>.yaml besides the shared "
                           "files and environments.yaml): is this the config directory?")
    except CibError as error:
        if args.artifacts is not None:  # the untrusted pull request's check run shows it
            from .checkrun_errors import write_error_report

            write_error_report(error, args.artifacts, Path.cwd())
        raise
    pools = sum(len(k.pools) for k in fleet.keys.values())
    targets = sum(len(k.targets) for k in fleet.keys.values())
    print(f"{args.config_dir}: OK ({len(fleet.keys)} keys, {targets} targets, {pools} pools, "
          f"{len(fleet.environments)} environments)")
    return 0


def cmd_directives(args: argparse.Namespace) -> int:
    from .directives import Vocabulary, parse_directives

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


def cmd_changes(args: argparse.Namespace) -> int:
    from .changes import compute_changes
    from .config import load_fleet
    from .gitrepo import GitTreeSource, open_repo, resolve
    from .render import changes_table

    repo = open_repo(args.repo)
    base_commit, head_commit = resolve(repo, args.base), resolve(repo, args.head)
    head_source = GitTreeSource(head_commit, args.config_dir)
    if not head_source.exists:
        raise CibError(f"{args.head} has no {args.config_dir}/ directory")
    head = load_fleet(head_source)
    base_source = GitTreeSource(base_commit, args.config_dir)
    base, base_problem = None, None
    if base_source.exists:
        try:
            base = load_fleet(base_source)
        except ConfigError as exc:
            base_problem = f"config at base does not load ({exc.problems[0]})"
            print(f"warning: {exc}\nwarning: treating every image as changed",
                  file=sys.stderr)
    report = compute_changes(base, head, base_commit.hexsha, head_commit.hexsha, base_problem)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        changes_table(report, sys.stdout)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import PlanRequest, make_plan
    from .render import plan_dot, plan_json, plan_mermaid, plan_table

    message = args.message
    if message is not None and message.startswith("@"):
        try:
            message = Path(message[1:]).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CibError(f"cannot read {message[1:]}: {exc.strerror}") from None
    if args.pull_request and not args.tasks_for.startswith("github-pull-request"):
        raise CibError(f"--pull-request {args.pull_request} plans a pull request: give "
                       "--tasks-for github-pull-request too (the default is a push)")
    plan = make_plan(PlanRequest(
        repo=Path(args.repo), head=args.head, base=args.base, no_base=args.no_base,
        message=message,
        tasks_for=args.tasks_for, pull_request=args.pull_request or 0,
        pull_request_action=args.pull_request_action, environment=args.environment),
        notify=lambda line: print(line, file=sys.stderr))
    if args.format == "json":
        print(plan_json(plan))
    elif args.format == "dot":
        print(plan_dot(plan))
    elif args.format == "mermaid":
        print(plan_mermaid(plan))
    elif args.format == "markdown":  # the decision's check run text
        from .checkrun import plan_markdown

        print(plan_markdown(plan))
    else:
        plan_table(plan, sys.stdout)
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `cib` argument parser: every command, or, given `command` (the command about to
    run), only the command that parses it, so that only its module is imported."""
    parser = argparse.ArgumentParser(
        prog="cib", description="Plan cloud machine image builds under Taskcluster.")
    parser.add_argument("--version", action="version", version=f"cib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [(module, add) for module, add, names in COMMAND_MODULES
               if command is None or command in names]
    if command is None or command in OWN_COMMANDS or not modules:
        _add_own_commands(commands)
    for module, add in modules:
        getattr(import_module(f".{module}", __package__), add)(commands)
    return parser


def _add_own_commands(commands: Any) -> None:
    """The commands this module runs: config, directives, changes, plan."""
    from .plan import TASKS_FOR

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

    changes = commands.add_parser(
        "changes", help="which images must be rebuilt between two revisions, and why")
    changes.add_argument("--repo", default=".", help="git repository (default: .)")
    changes.add_argument("--base", required=True, help="revision the images were built from")
    changes.add_argument("--head", default="HEAD", help="revision to build (default: HEAD)")
    changes.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                         help="config directory inside the repository (default: config)")
    changes.add_argument("--format", choices=("table", "json"), default="table")
    changes.set_defaults(func=cmd_changes)
    plan = commands.add_parser(
        "plan", help="the task graph a decision would create, offline (no credentials)",
        description="Runs the decision's own taskgraph generation on the repository, treating "
                    "images whose digest was built at --base as already built.")
    plan.add_argument("--repo", default=".", help="git repository (default: .)")
    plan.add_argument("--head", help="revision to plan (default: the working tree)")
    plan.add_argument("--base", help="revision whose images count as built (default: the "
                                     "head's parent, or HEAD for the working tree)")
    plan.add_argument("--no-base", action="store_true",
                      help="treat nothing as built: the whole graph")
    plan.add_argument("--message", help="commit message to read directives from (default: "
                                         "the head commit's; @FILE reads a file)")
    plan.add_argument("--tasks-for", default="github-push", choices=TASKS_FOR)
    plan.add_argument("--pull-request", type=PULL_REQUEST, metavar="N",
                      help="pull request number (with --tasks-for github-pull-request)")
    plan.add_argument("--pull-request-action", default="opened",
                      choices=("opened", "synchronize", "reopened", "closed"))
    plan.add_argument("--environment", help="environment the decision runs for "
                                            "(default: the first in environments.yaml)")
    plan.add_argument("--format", choices=("table", "json", "dot", "mermaid", "markdown"),
                      default="table")
    plan.set_defaults(func=cmd_plan)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a worker cancelling a task, or its maxRunTime) raised where the program is,
    as SIGINT raises KeyboardInterrupt: `finally` blocks run (temporary keys removed) and
    submission stops at once."""

    signal_name, exit_code = "SIGTERM", 128 + 15


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the command runs, SIGTERM raises Terminated in the main thread (unless someone
    else handles it); the previous handler afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cib` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    with _sigterm_raises():
        return _run(args)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, when it starts with one (no option before it); None
    otherwise (`--help`, `--version`, a mistake: the full parser answers)."""
    if argv and argv[0] in OWN_COMMANDS + tuple(n for *_, names in COMMAND_MODULES
                                                 for n in names):
        return argv[0]
    return None


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command in CLOUD_COMMANDS:
            from . import cloudcreds

            cloudcreds.ensure()
        return args.func(args)
    except CibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        # SubmissionInterrupted says what exists; a bare Ctrl-C still says it stopped
        said = str(exc) or f"interrupted by {getattr(exc, 'signal_name', 'SIGINT')}"
        print(f"error: {said}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:
        # `cib plan ... | head`: the reader is gone; quietly, as other command-line tools do.
        # Python would otherwise complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

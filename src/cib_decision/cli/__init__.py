"""The `cib` command. Thin: parses arguments, calls the pure functions, prints results.

This package is the entry layer: this module holds the command table, `main` (the console
script's and `python -m cib_decision`'s entry point) and how errors and signals end a run; each
other module adds the commands of one concern (`add_parser`) and runs them:

  config.py     cib config check, cib directives
  plan.py       cib changes, cib plan
  decision.py   cib decision, cib action-callback (the decision task)
  image.py      cib image ..., cib release ... (the build tasks)
  pool.py       cib pool ... (worker-manager pools)
  lifecycle.py  cib promote, cib rollback
  purge.py      cib purge
  gc.py         cib gc
  drift.py      cib drift
  stats.py      cib stats
  render.py     tables, JSON and dot of plans and change reports (mermaid: checkrun.py)

Errors caused by input print as one clear message (file and line, or commit message line)
with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from importlib import import_module

from .. import __version__
from ..errors import CibError

# The defaults of the options every task command shares: a task runs in the repository's
# checkout and writes under artifacts/, which its task publishes (taskgraph/transforms/common.py)
DEFAULT_CONFIG_DIR = "config"
DEFAULT_ARTIFACTS = "artifacts"
# Commands that call clouds: in a task they get the level's cloud credentials (cloudcreds.py).
CLOUD_COMMANDS = ("image", "purge", "gc", "promote", "drift")
# Every command (module under cib_decision, its `add_*` function, the commands it adds): only
# the module of the command being run is imported, so `cib plan` does not pay for the imports
# of the Taskcluster, cloud and local-deployment commands (about 0.2 s). `cib --help` imports
# all. The order is the order of `cib --help`.
COMMAND_MODULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cli.config", "add_parser", ("config", "directives")),
    ("cli.plan", "add_parser", ("changes", "plan")),
    ("cli.decision", "add_parser", ("decision", "action-callback")),
    ("dev_event", "add_parser", ("dev-event",)),
    ("dev_event", "add_release_parser", ("dev-release",)),
    ("cli.image", "add_parser", ("image", "release")),
    ("cli.pool", "add_parser", ("pool",)),
    ("cli.purge", "add_parser", ("purge",)),
    ("cli.gc", "add_parser", ("gc",)),
    ("cli.lifecycle", "add_parser", ("promote", "rollback")),
    ("cli.drift", "add_parser", ("drift",)),
    ("cli.stats", "add_parser", ("stats",)),
    ("devtc.cli", "add_parser", ("dev-taskcluster",)),
    ("devpipeline.cli", "add_parser", ("dev-up",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `cib` argument parser: every command, or, given `command` (the command about to
    run), only the command that parses it, so that only its module is imported."""
    parser = argparse.ArgumentParser(
        prog="cib", description="Plan cloud machine image builds under Taskcluster.")
    parser.add_argument("--version", action="version", version=f"cib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [(module, add) for module, add, names in COMMAND_MODULES
               if command in names] or [(module, add) for module, add, _ in COMMAND_MODULES]
    for module, add in modules:
        getattr(import_module(f"..{module}", __package__), add)(commands)
    return parser


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
    if argv and argv[0] in (n for *_, names in COMMAND_MODULES for n in names):
        return argv[0]
    return None


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command in CLOUD_COMMANDS:
            from .. import cloudcreds

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

"""`cib dev-taskcluster`: run the local Taskcluster in the foreground."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..bounds import int_argument
from ..errors import CibError
from .faults import FaultSettings
from .harness import DEFAULT_PROJECT, DevTaskcluster


def _provider(text: str) -> tuple[str, str]:
    provider_id, sep, provider_type = text.partition("=")
    if not sep or not provider_id or not provider_type:
        raise argparse.ArgumentTypeError(f"expected ID=TYPE (e.g. azure2=azure), not {text!r}")
    return provider_id, provider_type


def _secret(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f"expected NAME=FILE (e.g. project/cib/level-3/clouds=clouds.json), not {text!r}")
    return name, Path(path)


def _secret_value(name: str, path: Path) -> dict[str, Any]:
    """The JSON object in `path`, to store as secret `name`; CibError when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CibError(f"--secret {name}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CibError(f"--secret {name}: {path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CibError(f"--secret {name}: {path} holds a JSON {type(value).__name__}; a secret "
                       "is a JSON object")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, not {text}")
    return value


def _latency(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"milliseconds, a whole number >= 0, not {text!r}")
    return int(text)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `dev-taskcluster` on the `cib` command's subparsers."""
    parser = subparsers.add_parser(
        "dev-taskcluster",
        help="run a local Taskcluster (queue, index, worker-manager, secrets, object)",
        description="Serves a faithful local Taskcluster on 127.0.0.1 until Ctrl-C; prints "
                    "its root URL and the credentials of the root client and of one client "
                    "per repository role.")
    parser.add_argument("--port", type=int_argument(0, 65535), default=0,
                        help="port (default: a free one)")
    parser.add_argument("--roles", type=Path, metavar="FILE",
                        help="roles file (default: taskcluster/roles.yml of the repository, "
                             "else the one that ships with cib-decision)")
    parser.add_argument("--project", default=DEFAULT_PROJECT,
                        help=f"value of {{project}} in the roles (default: {DEFAULT_PROJECT})")
    parser.add_argument("--schemas", type=Path, metavar="DIR",
                        help="the taskcluster-schemas/taskcluster/schemas directory (default: "
                             "$CIB_TASKCLUSTER_SCHEMAS or ../shared/reference)")
    parser.add_argument("--provider", type=_provider, action="append", default=[],
                        metavar="ID=TYPE", help="a worker-manager provider and its type, "
                        "besides azure=azure, aws=aws, google=google (repeatable)")
    parser.add_argument("--error-rate", type=_rate, default=0.0, metavar="R",
                        help="share of API requests answered 500/502/503 (0..1)")
    parser.add_argument("--latency-ms", type=_latency, default=0, metavar="MS",
                        help="delay added to each API request")
    parser.add_argument("--drop-rate", type=_rate, default=0.0, metavar="R",
                        help="share of API requests whose connection is dropped (0..1); half "
                             "of them after the request was applied")
    parser.add_argument("--secret", type=_secret, action="append", default=[],
                        metavar="NAME=FILE", help="store the JSON object in FILE as secret NAME "
                        "(expires in a year; repeatable)")
    parser.add_argument("--access-token", metavar="T",
                        help="access token of every client (default: random ones)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.set_defaults(func=cmd_dev_taskcluster)
    return parser


def cmd_dev_taskcluster(args: argparse.Namespace) -> int:
    """Start the server, print how to reach it, serve until Ctrl-C."""
    if args.roles is not None and not args.roles.is_file():
        raise CibError(f"no roles file {args.roles}")
    if args.schemas is not None and not args.schemas.is_dir():
        raise CibError(f"no Taskcluster schema directory {args.schemas}")
    secrets = {name: _secret_value(name, path) for name, path in args.secret}

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        tc = DevTaskcluster(
            port=args.port, schemas_dir=args.schemas, roles_file=args.roles,
            project=args.project, providers=dict(args.provider),
            faults=FaultSettings(args.error_rate, args.latency_ms, args.drop_rate),
            access_token=args.access_token, log=None if args.quiet else log)
        tc.start()
        for name, value in secrets.items():
            tc.set_secret(name, value)
    except OSError as exc:
        raise CibError(f"cannot listen on port {args.port}: {exc.strerror}") from None
    try:
        print(f"TASKCLUSTER_ROOT_URL={tc.root_url}")
        clients = [("root", tc.root), *((role, tc.role_client(role)) for role in tc.roles)]
        width = max(len(name) for name, _ in clients)
        for name, client in clients:
            print(f"{name:<{width}}  clientId={client.client_id} "
                  f"accessToken={client.access_token}")
        if secrets:
            print(f"secrets: {', '.join(sorted(secrets))}")
        print(f"providers: {', '.join(f'{i}={t}' for i, t in tc.providers.items())}; "
              "dev hooks under /dev/ (docs/dev-taskcluster.md); Ctrl-C stops", flush=True)
        tc.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        tc.stop()
    return 0

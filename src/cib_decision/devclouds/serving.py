"""How a cloud fake runs as a program of its own (`python -m cib_decision.devclouds.<x>_server`):
seeded from a config, its clouds-secret part printed, served until interrupted."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from typing import Any


def serve_until_interrupted(server: Any, config_dir: str | None) -> int:
    """Inside `server` (a running fake server with `fake.add_fleet` and `secret()`): seed the
    fleet of `config_dir`, print the secret as JSON and serve until Ctrl-C or SIGTERM, which
    both leave through the server's own clean-up; exit status 0."""
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if config_dir:
        from ..config import DirectorySource, load_fleet

        server.fake.add_fleet(load_fleet(DirectorySource(config_dir)))
    print(json.dumps(server.secret(), indent=2), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    return 0

"""`cib dev-event` for the decision tests (test helper): a GitHub event rendered from
.taskcluster.yml and its decision task created and run against the local Taskcluster, in a
subprocess (taskgraph registers one graph root per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cib_decision.devtc.harness import DevTaskcluster


def dev_event(tc: DevTaskcluster, repo: Path, *args: str, setup: str = "",
              timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    env.update(tc.environ())
    command = [sys.executable, "-m", "cib_decision", "dev-event", "--repo", str(repo), *args]
    if setup:
        command += ["--setup", setup]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)

"""`cib plan` for the tests (test helper): the command in a subprocess (taskgraph registers one
graph root per process) and its JSON plan."""

from __future__ import annotations

import json
import subprocess
import sys


def cib(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cib_decision", *args], capture_output=True,
                          text=True, timeout=120)


def plan_json(repo, *args: str) -> dict:
    result = cib("plan", "--repo", str(repo), "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)

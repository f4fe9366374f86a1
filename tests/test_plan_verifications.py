"""`cib plan` leaves taskgraph's verifications to the decision (a third of a second at 1000
keys); the decision, which submits, still runs every one of them."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from cib_decision import decision

from .repos import fleet_repo

COUNT = """
import contextlib, io, sys
from taskgraph.util import verify
calls = []
original = verify.VerificationSequence.__call__
verify.VerificationSequence.__call__ = lambda self, name, *a, **k: (
    calls.append(name), original(self, name, *a, **k))[1]
from cib_decision.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["plan", "--repo", sys.argv[1], "--head", "HEAD", "--format", "json"]) == 0
print(len(calls))
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return fleet_repo(tmp_path_factory.mktemp("verifications") / "images")


def test_cib_plan_runs_no_verification(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", COUNT, str(repo)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split()[-1] == "0"


def test_the_decision_keeps_taskgraphs_verifications():
    source = inspect.getsource(decision.generate)
    assert "TaskGraphGenerator(" in source and "enable_verifications" not in source

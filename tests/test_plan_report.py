"""A push's plan compares only the image keys of the tasks that run with the base (the reasons
it prints are those of the whole comparison); a pull request's, whose parameters name its
changed keys, compares every key first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .repos import fleet_repo

RUN = """
import contextlib, io, json, sys
from cib_decision import changes, plan
asked = []
original = plan.compute_changes
def compute_changes(base, head, *args):
    asked.append(sorted(head.keys))
    return original(base, head, *args)
plan.compute_changes = compute_changes
from cib_decision.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["plan", "--repo", sys.argv[1], "--head", "HEAD", "--format", "json",
                 *sys.argv[2:]]) == 0
tasks = json.loads(out.getvalue())["tasks"]
print(json.dumps({"asked": asked, "reasons": {l: t["reason"] for l, t in tasks.items()}}))
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return fleet_repo(tmp_path_factory.mktemp("report") / "images")


def _plan(repo, tmp_path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RUN, str(repo), *args], capture_output=True,
                         text=True, check=True,
                         env={**os.environ, "CIB_CACHE_DIR": str(tmp_path)})
    return json.loads(out.stdout.splitlines()[-1])


def test_a_push_compares_the_keys_of_its_tasks_only(repo, tmp_path):
    result = _plan(repo, tmp_path)
    assert result["asked"] == [["win10-64"]]  # one key changed: one key compared
    reasons = result["reasons"]
    assert reasons["disk-image-win10-64"] == "image.edition; product-keys.yaml"
    assert reasons["worker-pool-gecko-t-win10-64-azure"].startswith("deploy")


def test_a_pull_request_compares_every_key_first(repo, tmp_path):
    result = _plan(repo, tmp_path, "--tasks-for", "github-pull-request", "--pull-request", "4")
    assert len(result["asked"]) == 1 and "ubuntu-2404" in result["asked"][0]


def test_a_full_plan_compares_every_key(repo, tmp_path):
    result = _plan(repo, tmp_path, "--no-base")
    assert "ubuntu-2404" in result["asked"][0] and "win10-64" in result["asked"][0]
    assert result["reasons"]["disk-image-win10-64"] == "nothing counts as built (--no-base)"

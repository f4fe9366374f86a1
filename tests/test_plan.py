"""`cib plan`: the decision's own graph generation, offline, from the command line.

Each call runs in a subprocess: taskgraph registers one graph root per process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import CONFIG_DIR, ROOT
from .plan_support import cib, plan_json
from .repos import fleet_repo, git


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fleet repository: first commit, then one that changes win10-64's edition."""
    return fleet_repo(tmp_path_factory.mktemp("plan") / "images")


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path_factory):
    """cib plan caches parsed config (by default under ~/.cache/cib); these tests use their own."""
    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cib-cache"))


def test_only_what_changed_since_base_is_built(repo):
    tasks = plan_json(repo, "--head", "HEAD")["tasks"]
    built = {label for label in tasks if label.startswith(("disk-image", "machine-image"))}
    assert built == {"disk-image-win10-64", "machine-image-win10-64-azure-centralus",
                     "machine-image-win10-64-azure-eastus2",
                     "machine-image-win10-64-azure-westus2"}
    assert tasks["disk-image-win10-64"]["reason"] == "image.edition; product-keys.yaml"
    assert {label for label in tasks if label.startswith("worker-pool")} == {
        "worker-pool-gecko-t-win10-64-azure"}
    assert tasks["disk-image-win10-64"]["task"]["provisionerId"] == "cib-3"


def test_the_json_carries_directives_parameters_and_full_task_definitions(repo):
    data = plan_json(repo, "--head", "HEAD", "--message", "x\n\ninclude keys: win10-64")
    assert set(data) == {"directives", "parameters", "tasks", "skipped"}
    assert data["skipped"] == {}  # ubuntu-2404 and its Google target are not in scope
    assert data["directives"]["include"]["keys"] == ["win10-64"]
    assert data["parameters"]["target_tasks_method"] == "cib"
    task = data["tasks"]["machine-image-win10-64-azure-centralus"]
    assert task["kind"] == "machine-image" and task["task"]["payload"]["command"]


def test_the_table_shows_label_kind_symbol_dependencies_and_reason(repo):
    result = cib("plan", "--repo", str(repo), "--head", "HEAD")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("machine-image-win10-64-azure-centralus"))
    for text in ("machine-image", "I(az-centralus)", "disk-image-win10-64", "image.edition"):
        assert text in row
    assert "already built at the base" in result.stdout


@pytest.mark.parametrize(("fmt", "edge"), [
    ("dot", '"machine-image-win10-64-azure-centralus" -> "disk-image-win10-64";'),
    ("mermaid", "-->")])
def test_dot_and_mermaid_draw_the_graph(repo, fmt, edge):
    result = cib("plan", "--repo", str(repo), "--head", "HEAD", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert edge in result.stdout


def test_an_old_revision_plans_its_own_images(repo):
    tasks = plan_json(repo, "--head", "HEAD~1")["tasks"]  # the first commit: nothing built yet
    assert "disk-image-win11-64" in tasks and "disk-image-win10-64" in tasks


def test_a_pull_request_plan_uses_per_pr_pools(repo):
    tasks = plan_json(repo, "--head", "HEAD", "--tasks-for", "github-pull-request",
                      "--pull-request", "9", "--environment", "staging")["tasks"]
    pool = tasks["worker-pool-gecko-t-win10-64-azure"]["task"]
    assert "--pull-request 9" in pool["payload"]["command"][0][-1]
    assert not any(label.startswith("purge") for label in tasks)


def test_a_bad_directive_exits_2_naming_the_line(repo):
    result = cib("plan", "--repo", str(repo), "--head", "HEAD", "--message", "x\n\npool deploy")
    assert result.returncode == 2
    assert "commit message line 3: `pool deploy`" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_message_file_exits_2_without_traceback(repo, tmp_path):
    result = cib("plan", "--repo", str(repo), "--message", f"@{tmp_path / 'missing'}")
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_config_at_head_names_the_revision_file_and_line(tmp_path):
    """--head reads the config straight from git objects: a problem names `<commit>:<path>`."""
    path = tmp_path / "images"
    shutil.copytree(CONFIG_DIR, path / "config")
    shutil.copytree(ROOT / "taskcluster", path / "taskcluster")
    key = path / "config" / "win10-64.yaml"
    text = key.read_text()
    line = text[:text.index("      region: East US 2\n")].count("\n") + 1
    key.write_text(text.replace("      region: East US 2\n", "      regoin: East US 2\n", 1))
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "typo")
    head = git(path, "rev-parse", "HEAD")
    result = cib("plan", "--repo", str(path), "--head", "HEAD", "--no-base")
    assert result.returncode == 2
    assert (f"{head[:12]}:config/win10-64.yaml:{line}: unknown field 'regoin' in target[1]; "
            "did you mean 'region'?") in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plan_from_cached_config_is_the_plan_from_parsed_config(repo, tmp_path, monkeypatch):
    def plan() -> tuple[str, str]:
        """The table (dependencies by label) and the JSON less what varies from run to run:
        the temp dir task metadata names, times in index routes, and task ids (the task
        environment's mount and its cache name one)."""
        table = cib("plan", "--repo", str(repo), "--head", "HEAD", "--no-base")
        assert table.returncode == 0, table.stderr
        tasks = json.dumps(plan_json(repo, "--head", "HEAD", "--no-base")["tasks"])
        varying = (r"cib-plan-[^/]+|pushdate[.0-9]+|\"rank\": [0-9]+|"
                   r"\"dependencies\": \[[^]]*\]|\"CIB_(?:DISK|MACHINE)_IMAGE_TASK_ID\": "
                   r"\"[^\"]+\"|"
                   r"\"taskId\": \"[^\"]+\"|task-env-[A-Za-z0-9_-]{22}")
        return table.stdout, re.sub(varying, "X", tasks)

    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path / "cache"))
    first = plan()
    assert list((tmp_path / "cache").glob("*.sqlite"))
    second = plan()
    monkeypatch.setenv("CIB_CACHE_DIR", "")
    assert first == second == plan()


def test_each_task_links_its_kind_in_the_repository_not_a_temporary_export(repo):
    tasks = plan_json(repo, "--head", "HEAD")["tasks"]
    head = git(repo, "rev-parse", "HEAD")
    for label, planned in tasks.items():
        source = planned["task"]["metadata"]["source"]
        assert source == (f"https://github.com/example/images/blob/{head}/taskcluster/kinds/"
                          f"{planned['kind']}"), label


def test_a_reader_that_goes_away_ends_the_plan_quietly(repo):
    process = subprocess.Popen(
        [sys.executable, "-m", "cib_decision", "plan", "--repo", str(repo), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the plan is written: its first write finds no reader
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr

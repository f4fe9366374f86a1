"""Config is read from the repository only: a key file that is a symbolic link is refused (in
a checkout and in git alike, never followed, its target never quoted), and the config
directory may not lead outside the repository."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.errors import CibError, ConfigError
from cib_decision.gitrepo import GitTreeSource, open_repo, resolve
from cib_decision.taskgraph import fleet as graph_fleet

from .repos import fleet_repo, git

SECRET = "root:x:0:0:a secret line"


@pytest.fixture
def outside(tmp_path):
    """A file outside the repository that must never be read."""
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_text(f"{SECRET}\n")
    return path


@pytest.mark.parametrize("target", ["outside", "inside", "directory"])
def test_a_key_file_that_is_a_link_is_refused_wherever_it_points(tmp_path, outside, target):
    repo = fleet_repo(tmp_path / "images")
    link = repo / "config" / "win10-64.yaml"
    link.unlink()
    link.symlink_to({"outside": outside, "inside": repo / "config" / "win11-64.yaml",
                     "directory": tmp_path}[target])
    with pytest.raises(ConfigError) as refused:
        load_fleet(DirectorySource(repo / "config"))
    (problem,) = refused.value.problems
    assert problem.file.endswith("win10-64.yaml") and "is a symbolic link" in problem.message
    assert SECRET not in str(refused.value) and str(outside) not in str(refused.value)


def test_a_link_committed_to_git_is_refused_as_in_a_checkout(tmp_path, outside):
    repo = fleet_repo(tmp_path / "images")
    link = repo / "config" / "win10-64.yaml"
    link.unlink()
    link.symlink_to(outside)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "link")
    source = GitTreeSource(resolve(open_repo(repo), "HEAD"), "config")
    with pytest.raises(ConfigError) as refused:
        load_fleet(source)
    assert "win10-64.yaml: is a symbolic link" in str(refused.value)
    assert SECRET not in str(refused.value) and str(outside) not in str(refused.value)


def graph_config(root, config_dir: str):
    return SimpleNamespace(root_dir=str(root / "taskcluster"),
                           get=lambda name, default=None: {"config-dir": config_dir}
                           if name == "cib" else default)


@pytest.mark.parametrize("config_dir", ["/etc", "../elsewhere", "config/../../x", "",
                                        "C:\\config"])
def test_a_config_dir_setting_that_leaves_the_repository_is_refused(tmp_path, config_dir):
    with pytest.raises(CibError, match="must be a relative path inside the repository"):
        graph_fleet.config_dir(graph_config(tmp_path, config_dir))


def test_a_config_directory_that_links_outside_the_repository_is_refused(tmp_path):
    repo = fleet_repo(tmp_path / "images")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(repo / "config", elsewhere)
    os.symlink(elsewhere, repo / "config")
    with pytest.raises(CibError, match="leading outside the repository"):
        graph_fleet.config_dir(graph_config(repo, "config"))
    with pytest.raises(CibError, match="leads outside the repository"):
        DirectorySource(repo / "config", root=repo)

"""`cib changes`: what must be rebuilt between two revisions, and why, read from git objects."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cib_decision import cli
from cib_decision.changes import diff_paths
from cib_decision.yamlsrc import parse_yaml

from .conftest import CONFIG_DIR


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class Repo:
    """A throw-away git repository holding a copy of the bundled fleet."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir()
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "test@example.com")
        git(path, "config", "user.name", "test")
        shutil.copytree(CONFIG_DIR, path / "config")
        self.base = self.commit("initial fleet")

    def file(self, name: str) -> Path:
        return self.path / "config" / name

    def edit(self, name: str, change) -> None:
        """Load a config file, let `change` mutate it, write it back."""
        data = parse_yaml(self.file(name).read_text(), name).data
        change(data)
        self.file(name).write_text(yaml.safe_dump(data, sort_keys=False))

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def changes(self, capsys, base: str, head: str = "HEAD", repo: Path | None = None) -> dict:
        code = cli.main(["changes", "--repo", str(repo or self.path), "--base", base,
                         "--head", head, "--format", "json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


def by_key(report: dict) -> dict:
    return {k["key"]: k for k in report["keys"]}


def rebuilt(report: dict) -> dict[str, list[str]]:
    """key -> the images that rebuild ('disk' and target ids)."""
    result = {}
    for key in report["keys"]:
        images = (["disk"] if key["disk_image"]["rebuild"] else []) + [
            t["target"] for t in key["targets"] if t["machine_image"]["rebuild"]]
        if images:
            result[key["key"]] = images
    return result


def updated_pools(report: dict) -> dict[str, list[str]]:
    return {p["pool"]: p["because"] for k in report["keys"] for p in k["pools"] if p["update"]}


def test_json_has_the_documented_shape(repo, capsys):
    report = repo.changes(capsys, repo.base, repo.base)
    assert set(report) == {"base", "head", "keys"}
    assert report["base"] == report["head"] == repo.base
    key = report["keys"][0]
    assert set(key) == {"key", "removed", "disk_image", "targets", "pools"}
    assert set(key["disk_image"]) == {"rebuild", "digest", "because"}
    assert set(key["targets"][0]) == {"target", "machine_image", "skipped"}
    assert set(key["pools"][0]) == {"pool", "update", "because"}
    assert all("/" in t["target"] for k in report["keys"] for t in k["targets"])


def test_nothing_rebuilds_between_a_revision_and_itself(repo, capsys):
    report = repo.changes(capsys, repo.base, repo.base)
    assert rebuilt(report) == {} and updated_pools(report) == {}


def test_a_comment_and_reindent_change_nothing(repo, capsys):
    path = repo.file("win10-64.yaml")
    path.write_text("# a comment at the top\n" + path.read_text().replace("\n", "\n  # note\n", 3))
    for name in ("packages.yaml", "ubuntu-2404.yaml"):
        data = parse_yaml(repo.file(name).read_text(), name).data
        repo.file(name).write_text(yaml.safe_dump(data, indent=8, sort_keys=True))
    repo.commit("cosmetic")
    report = repo.changes(capsys, repo.base)
    assert rebuilt(report) == {} and updated_pools(report) == {}


def test_an_image_field_rebuilds_the_disk_and_every_machine_image_of_that_key(repo, capsys):
    repo.edit("win10-64.yaml", lambda d: d["image"].update(edition="Enterprise"))
    repo.commit("enterprise")
    report = repo.changes(capsys, repo.base)
    key = by_key(report)["win10-64"]
    assert key["disk_image"] == {"rebuild": True, "digest": key["disk_image"]["digest"],
                                 "because": ["image.edition", "product-keys.yaml"]}
    assert set(rebuilt(report)) == {"win10-64"}
    assert all(t["machine_image"]["rebuild"] and "image.edition" in t["machine_image"]["because"]
               for t in key["targets"])


def test_a_bootstrap_change_rebuilds_only_that_targets_machine_image(repo, capsys):
    def change(data):
        # the bootstrap is shared through a YAML alias: give the first target its own copy
        data["target"][0]["bootstrap"] = copy.deepcopy(data["target"][0]["bootstrap"])
        data["target"][0]["bootstrap"]["executions"][0]["name"] = "renamed-step"

    repo.edit("win11-64.yaml", change)
    repo.commit("bootstrap")
    report = repo.changes(capsys, repo.base)
    key = by_key(report)["win11-64"]
    first = key["targets"][0]
    assert rebuilt(report) == {"win11-64": [first["target"]]}
    assert first["machine_image"]["because"] == [f"target[{first['target']}].bootstrap"]
    assert key["disk_image"] == {"rebuild": False, "digest": key["disk_image"]["digest"],
                                 "because": []}


def test_a_tag_change_is_named(repo, capsys):
    repo.edit("win2022-64.yaml", lambda d: d["target"][1]["tag"].append(
        {"name": "extra", "value": "1"}))
    repo.commit("tag")
    report = repo.changes(capsys, repo.base)
    target = by_key(report)["win2022-64"]["targets"][1]
    assert target["machine_image"] == {"rebuild": True, "digest": target["machine_image"]["digest"],
                                       "because": [f"target[{target['target']}].tag"]}


def test_a_shared_input_rebuilds_only_the_keys_it_applies_to(repo, capsys):
    def change(data):
        for entry in data:
            if "Windows 10" in entry.get("target", {}).get("os", []):
                entry["name"] = entry["name"] + "-v2"

    repo.edit("packages.yaml", change)
    repo.commit("packages")
    report = repo.changes(capsys, repo.base)
    assert "win10-64" in rebuilt(report)
    assert "ubuntu-2404" not in rebuilt(report)
    assert by_key(report)["win10-64"]["disk_image"]["because"] == ["packages.yaml"]


def test_a_pool_change_updates_only_the_pool(repo, capsys):
    repo.edit("win11-64.yaml", lambda d: d["manager"]["pool"][0]["capacity"].update(maximum=99))
    repo.commit("capacity")
    report = repo.changes(capsys, repo.base)
    assert rebuilt(report) == {}
    assert updated_pools(report) == {"gecko-t/win11-64-azure": ["capacity.maximum"]}


def test_a_new_key_rebuilds_everything_and_a_removed_key_is_listed(repo, capsys):
    text = repo.file("win10-64.yaml").read_text().replace("variant: win10-64-azure",
                                                          "variant: win10-64-copy-azure")
    repo.file("win10-64-copy.yaml").write_text(text)
    repo.file("win2022-64.yaml").unlink()
    repo.commit("add and remove")
    report = repo.changes(capsys, repo.base)
    keys = by_key(report)
    new = keys["win10-64-copy"]
    assert new["removed"] is False and new["disk_image"]["because"] == ["new key"]
    assert all(t["machine_image"]["rebuild"] for t in new["targets"])
    assert new["pools"] == [{"pool": "gecko-t/win10-64-copy-azure", "update": True,
                             "because": ["new key"]}]
    gone = keys["win2022-64"]
    assert gone["removed"] is True and gone["disk_image"]["rebuild"] is False


def test_a_base_without_config_makes_every_key_new(repo, capsys):
    git(repo.path, "checkout", "-q", "--orphan", "other")
    git(repo.path, "rm", "-rq", "--cached", ".")
    shutil.rmtree(repo.path / "config")
    (repo.path / "README").write_text("x")
    empty = repo.commit("empty")
    report = repo.changes(capsys, empty, repo.base)
    assert all(k["disk_image"]["because"] == ["new key"] for k in report["keys"])


def test_a_base_whose_config_is_broken_rebuilds_everything_with_a_warning(repo, capsys):
    repo.file("win10-64.yaml").write_text("image: [\n")
    broken = repo.commit("broken")
    repo.file("win10-64.yaml").write_text((CONFIG_DIR / "win10-64.yaml").read_text())
    repo.commit("fixed")
    code = cli.main(["changes", "--repo", str(repo.path), "--base", broken, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0
    assert "warning" in captured.err and "win10-64.yaml:2" in captured.err
    report = json.loads(captured.out)
    assert all(k["disk_image"]["rebuild"] for k in report["keys"])
    assert "config at base does not load" in report["keys"][0]["disk_image"]["because"][0]


def test_a_broken_head_config_exits_2_naming_file_and_line(repo, capsys):
    repo.edit("win10-64.yaml", lambda d: d["target"][0].update(regoin="x"))
    repo.commit("typo")
    code = cli.main(["changes", "--repo", str(repo.path), "--base", repo.base])
    err = capsys.readouterr().err
    assert code == 2
    assert ":config/win10-64.yaml:" in err and "did you mean 'region'" in err
    assert "Traceback" not in err


def test_an_unknown_revision_is_a_clear_error(repo, capsys):
    code = cli.main(["changes", "--repo", str(repo.path), "--base", "deadbeef" * 5])
    err = capsys.readouterr().err
    assert code == 2 and "is not in the repository" in err


def test_not_a_repository_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["changes", "--repo", str(tmp_path), "--base", "HEAD"]) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_reads_a_bare_clone_without_a_checkout(repo, tmp_path, capsys):
    repo.edit("win10-64.yaml", lambda d: d["image"].update(timezone="Europe/Berlin"))
    head = repo.commit("tz")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    report = repo.changes(capsys, repo.base, head, repo=bare)
    assert by_key(report)["win10-64"]["disk_image"]["because"] == ["image.timezone"]


def test_a_shallow_clone_missing_the_base_says_so(repo, tmp_path, capsys):
    repo.commit("second")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow)],
                   check=True)
    code = cli.main(["changes", "--repo", str(shallow), "--base", repo.base])
    err = capsys.readouterr().err
    assert code == 2 and "shallow clone" in err


def test_a_shallow_clone_with_both_revisions_works(repo, tmp_path, capsys):
    repo.edit("win10-64.yaml", lambda d: d["image"].update(timezone="UTC+1"))
    head = repo.commit("tz")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{repo.path}", str(shallow)],
                   check=True)
    report = repo.changes(capsys, repo.base, head, repo=shallow)
    assert rebuilt(report) == {"win10-64": ["disk", *[t["target"] for t in by_key(report)[
        "win10-64"]["targets"]]]}


def test_the_table_names_rebuilds_and_reasons(repo, capsys):
    repo.edit("win10-64.yaml", lambda d: d["image"].update(edition="Enterprise"))
    repo.commit("enterprise")
    assert cli.main(["changes", "--repo", str(repo.path), "--base", repo.base]) == 0
    out = capsys.readouterr().out
    assert "win10-64" in out and "rebuild" in out and "image.edition" in out


def test_diff_paths_names_leaves_and_list_items():
    old = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    new = {"a": {"b": 2, "c": [1, 2, 3]}, "e": 1}
    assert diff_paths(old, new, "image") == ["image.a.b", "image.a.c[2]", "image.d", "image.e"]
    assert diff_paths(1, True, "x") == ["x"]

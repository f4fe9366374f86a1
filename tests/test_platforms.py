"""The repository-level switches of cloud-image-builder, and ours: `.platforms.yml` and
`.environments.yml` beside the config directory, `platforms` per environment. Targets of a
platform that is not enabled get no task and are listed as skipped with the reason (plan,
changes); region names are checked against their cloud where a platform is enabled."""

from __future__ import annotations

import json
import shutil

import pytest

from cib_decision.cli import main
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import Directives
from cib_decision.errors import ConfigError
from cib_decision.selection import select

from .conftest import CONFIG_DIR
from .repos import cib_output, fleet_repo, git


@pytest.fixture
def config(tmp_path):
    """A copy of the bundled fleet in `<repo>/config`, nothing beside it yet."""
    directory = tmp_path / "repo" / "config"
    shutil.copytree(CONFIG_DIR, directory)
    return directory


def test_targets_of_a_platform_the_repository_does_not_enable_are_skipped(config):
    (config.parent / ".platforms.yml").write_text("---\n- azure\n")
    fleet = load_fleet(DirectorySource(config))
    assert fleet.enabled_platforms == {"azure"}
    selection = select(fleet, Directives(), "production")
    reason = "amazon is not enabled in this repository (.platforms.yml: azure)"
    assert selection.keys["win2022-64"].targets == ()
    assert set(selection.keys["win2022-64"].unbuilt_targets.values()) == {reason}
    assert selection.skipped["gecko-1/win2022-64-aws"] == reason
    assert selection.keys["win10-64"].targets  # azure still builds


def test_an_environment_may_build_on_fewer_platforms(config):
    environments = config / "environments.yaml"
    environments.write_text(environments.read_text().replace(
        "    pull-requests: false\n", "    pull-requests: false\n    platforms: [azure]\n", 1))
    fleet = load_fleet(DirectorySource(config))
    production = select(fleet, Directives(), "production")
    staging = select(fleet, Directives(), "staging")
    assert production.keys["win2022-64"].targets == ()
    assert "environments.yaml platforms: azure" in \
        production.keys["win2022-64"].unbuilt_targets["amazon/us-east-1"]
    assert staging.keys["win2022-64"].targets == ("amazon/us-east-1", "amazon/us-west-2")


def test_an_environment_the_repository_does_not_enable_builds_nothing(config):
    (config.parent / ".environments.yml").write_text("---\n- production\n")
    fleet = load_fleet(DirectorySource(config))
    assert select(fleet, Directives(), "production").keys
    staging = select(fleet, Directives(), "staging")
    assert staging.keys == {}
    assert staging.skipped == {"*": "environment staging is not enabled in this repository "
                                    "(.environments.yml: production)"}


@pytest.mark.parametrize("name, text, line, message", [
    (".platforms.yml", "- azure\n- amazn\n", 2, "unknown name 'amazn'; did you mean 'amazon'?"),
    (".platforms.yml", "azure\n", 1, "a YAML list of names"),
    (".environments.yml", "- production\n- stagin\n", 2, "did you mean 'staging'?"),
    (".platforms.yml", "- [\n", 2, "invalid YAML"),
])
def test_a_bad_repository_list_is_an_error_at_its_line(config, name, text, line, message):
    (config.parent / name).write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_fleet(DirectorySource(config))
    (problem,) = refused.value.problems
    assert problem.file.endswith(name) and problem.line == line and message in problem.message


def test_region_names_must_be_their_clouds_where_the_platform_is_enabled(config):
    key = config / "win10-64.yaml"
    key.write_text(key.read_text().replace("region: Central US", "region: us-east-1", 1))
    with pytest.raises(ConfigError) as refused:
        load_fleet(DirectorySource(config))
    (problem,) = [p for p in refused.value.problems if "region name" in p.message]
    assert problem.file.endswith("win10-64.yaml") and problem.line > 1
    assert problem.message.endswith(
        "'us-east-1' is not an Azure region name (it looks like an AWS region); azure "
        "regions look like eastus2 (or East US 2)")


def test_a_disabled_platforms_targets_may_keep_another_clouds_region_names(config):
    """cloud-image-builder kept dormant amazon targets named with Azure regions."""
    key = config / "win2022-64.yaml"
    key.write_text(key.read_text().replace("us-east-1", "East US"))  # targets and pools
    with pytest.raises(ConfigError, match="'eastus' is not an AWS region name"):
        load_fleet(DirectorySource(config))
    (config.parent / ".platforms.yml").write_text("- azure\n")
    load_fleet(DirectorySource(config))


def test_plan_and_changes_list_the_skipped_targets_with_the_reason(tmp_path, capsys):
    repo = fleet_repo(tmp_path / "images")
    (repo / ".platforms.yml").write_text("- azure\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "azure only")
    plan = json.loads(cib_output("plan", "--repo", str(repo), "--no-base", "--format", "json"))
    assert not [label for label in plan["tasks"] if "amazon" in label or "aws" in label]
    reason = "amazon is not enabled in this repository (.platforms.yml: azure)"
    assert plan["skipped"]["machine-image-win2022-64-amazon-us-east-1"] == reason
    assert main(["changes", "--repo", str(repo), "--base", "HEAD~2", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    skipped = {t["target"]: t["skipped"] for k in report["keys"] for t in k["targets"]
               if k["key"] == "win2022-64"}
    assert skipped == {"amazon/us-east-1": reason, "amazon/us-west-2": reason}


def test_a_machine_image_of_a_disabled_platform_is_refused_by_the_builder(capsys, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("TASK_ID", "fUAWQPAMT1S5M_ahPdmm4A")
    repo = fleet_repo(tmp_path / "images")
    (repo / ".platforms.yml").write_text("- azure\n")
    code = main(["image", "machine", "--key", "win2022-64", "--target", "amazon/us-east-1",
                 "--config-dir", str(repo / "config"),
                 "--artifacts", str(tmp_path / "artifacts")])
    err = capsys.readouterr().err
    assert code == 2 and "amazon is not enabled in this repository" in err, err


@pytest.mark.parametrize("platform, region, looks_like", [
    ("amazon", "us-east-1", None), ("amazon", "us-gov-west-1", None),
    ("amazon", "eusc-de-east-1", None), ("amazon", "eastus", "an Azure"),
    ("amazon", "us-central1", "a Google"), ("azure", "eastus2euap", None),
    ("azure", "us-east-1", "an AWS"), ("google", "northamerica-northeast1", None),
    ("google", "eastus", "an Azure"),
])
def test_each_cloud_has_its_own_region_names(platform, region, looks_like):
    from cib_decision.config.model import region_problem

    problem = region_problem(platform, region)
    if looks_like is None:
        assert problem is None
    else:
        assert f"(it looks like {looks_like} region)" in problem


@pytest.mark.parametrize("edit, message", [
    (("      zone: us-central1-a\n", ""), "a Google target needs `zone`"),
    (("      project: example-cib-images\n", ""), "a Google target needs `project`"),
    (("zone: us-central1-a", "zone: europe-west4-a"),
     "zone 'europe-west4-a' is not in region us-central1 (e.g. us-central1-a)"),
])
def test_a_google_target_without_its_project_or_zone_is_an_error_at_its_line(config, edit,
                                                                            message):
    key = config / "ubuntu-2404.yaml"
    text = key.read_text()
    assert edit[0] in text
    key.write_text(text.replace(*edit, 1))
    with pytest.raises(ConfigError) as refused:
        load_fleet(DirectorySource(config))
    (problem,) = refused.value.problems
    assert problem.file.endswith("ubuntu-2404.yaml") and problem.line > 100
    assert problem.message == f"target google/us-central1: {message}"

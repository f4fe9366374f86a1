"""Targets on clouds a decision does not build machine images on get no tasks: a cloud the
repository turns off (`.platforms.yml` without `google`), or one cib has no builder for
(`selection.BUILDABLE_PLATFORMS`: all three clouds today, so the in-process graph tests take
Google out of it, as a cloud without a builder).

They stay valid config with digests; their machine images, and the deploys and verifications of
pools that run their images (even besides images cib does build), are left out of the graph,
and `cib plan` says which and why. The bundled fleet has one such target when Google is off:
ubuntu-2404's google/us-central1 and the pool gecko-t/ubuntu-2404-gcp it serves.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import yaml

from cib_decision import selection
from cib_decision.cli import main
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.directives import Vocabulary, parse_directives
from cib_decision.selection import BUILDABLE_PLATFORMS, not_built, pool_not_built, select
from cib_decision.taskgraph.target_tasks import unbuilt_tasks

from .conftest import CONFIG_DIR, ROOT
from .graphs import FLEET, generator
from .plan_support import cib, plan_json
from .repos import fleet_repo, git

GOOGLE = "google is not enabled in this repository (.platforms.yml: amazon, azure)"
# the bundled fleet in a repository whose .platforms.yml leaves Google out
OFF = dataclasses.replace(FLEET, enabled_platforms=frozenset({"amazon", "azure"}))
SKIPPED = {"machine-image-ubuntu-2404-google-us-central1": GOOGLE,
           "worker-pool-gecko-t-ubuntu-2404-gcp": GOOGLE,
           "verify-gecko-t-ubuntu-2404-gcp": GOOGLE}


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path_factory):
    """cib plan caches parsed config (by default under ~/.cache/cib); these tests use their own."""
    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cib-cache"))


@pytest.fixture
def no_google_builder(monkeypatch):
    """cib as it was before its Google builder: a cloud it has no builder for."""
    monkeypatch.setattr(selection, "BUILDABLE_PLATFORMS", frozenset({"amazon", "azure"}))


def without_google(repo) -> None:
    """Commit a `.platforms.yml` that builds on AWS and Azure only."""
    (repo / ".platforms.yml").write_text("- amazon\n- azure\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "no google")


def test_cib_builds_on_all_three_clouds_and_names_why_not_elsewhere(no_google_builder):
    assert sorted(BUILDABLE_PLATFORMS) == ["amazon", "azure", "google"]
    assert not_built("amazon") is None and not_built("azure") is None
    assert not_built("google") == "google machine images are not built yet"
    assert not_built("google", OFF) == GOOGLE


def test_google_targets_stay_valid_config_with_digests():
    key = FLEET.keys["ubuntu-2404"]
    assert "google/us-central1" in {t.id for t in key.targets}
    assert "google/us-central1" in fleet_digests(FLEET)["ubuntu-2404"].machines


# -- the bundled fleet's graph ----------------------------------------------------------------

@pytest.mark.usefixtures("graph_env", "no_google_builder")
def test_the_graph_has_no_task_for_the_google_target_or_the_pool_it_serves():
    tgg = generator()
    full = tgg.full_task_graph.tasks
    # (purge tasks clean every cloud region the fleet names, built on or not)
    assert not [label for label in full if ("google" in label or "gcp" in label)
                and not label.startswith("purge-")]
    assert {"machine-image-ubuntu-2404-amazon-us-east-1", "worker-pool-gecko-t-ubuntu-2404-aws",
            "verify-gecko-t-ubuntu-2404-aws", "disk-image-ubuntu-2404",
            "tag-ubuntu-2404"} <= set(tgg.target_task_graph.tasks)


@pytest.mark.usefixtures("graph_env", "no_google_builder")
def test_the_tag_waits_only_for_the_amazon_machine_image(index):
    tgg = generator()
    assert tgg.full_task_graph.tasks["tag-ubuntu-2404"].soft_dependencies == [
        "machine-image-ubuntu-2404-amazon-us-east-1", "test-image-ubuntu-2404-amazon-us-east-1"]
    label_of = {task_id: label for label, task_id in tgg.label_to_taskid.items()}
    tag = tgg.optimized_task_graph.tasks[tgg.label_to_taskid["tag-ubuntu-2404"]]
    assert {label_of[t] for t in tag.dependencies.values()} == {
        "machine-image-ubuntu-2404-amazon-us-east-1", "test-image-ubuntu-2404-amazon-us-east-1",
        "task-env-cib"}


def test_selection_lists_the_google_target_and_pool_with_the_reason():
    directives = parse_directives("commit", Vocabulary.from_fleet(FLEET))
    selected = select(OFF, directives, "production")
    ubuntu = selected.keys["ubuntu-2404"]
    assert ubuntu.targets == ("amazon/us-east-1",) and ubuntu.disk_image
    assert ubuntu.pools == ("gecko-t/ubuntu-2404-aws",)
    assert ubuntu.unbuilt_targets == {"google/us-central1": GOOGLE}
    assert ubuntu.unbuilt_pools == {"gecko-t/ubuntu-2404-gcp": GOOGLE}
    assert unbuilt_tasks(OFF, selected, directives) == SKIPPED


@pytest.mark.parametrize(("message", "left_out"), [
    ("x\n\nno-verify", {"verify-gecko-t-ubuntu-2404-gcp"}),
    ("x\n\npool-deploy", {"machine-image-ubuntu-2404-google-us-central1"}),
    ("x\n\nexclude pools: gecko-t/ubuntu-2404-gcp", {"worker-pool-gecko-t-ubuntu-2404-gcp",
                                                     "verify-gecko-t-ubuntu-2404-gcp"}),
    ("x\n\ninclude keys: win10-64", set(SKIPPED)),
])
def test_only_what_the_directives_would_have_run_is_listed_as_skipped(message, left_out):
    directives = parse_directives(message, Vocabulary.from_fleet(FLEET))
    skipped = unbuilt_tasks(OFF, select(OFF, directives, "production"), directives)
    assert skipped == {label: GOOGLE for label in set(SKIPPED) - left_out}


def test_cib_plan_prints_what_was_skipped_and_why(tmp_path):
    repo = fleet_repo(tmp_path / "images")
    without_google(repo)
    result = cib("plan", "--repo", str(repo), "--no-base")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{GOOGLE}: machine-image-ubuntu-2404-google-us-central1, " \
           "verify-gecko-t-ubuntu-2404-gcp, worker-pool-gecko-t-ubuntu-2404-gcp skipped" in lines
    assert not [line for line in lines if line.startswith(tuple(SKIPPED))]
    tag = next(line for line in lines if line.startswith("tag-ubuntu-2404 "))
    assert "machine-image-ubuntu-2404-amazon-us-east-1" in tag
    data = plan_json(repo, "--no-base")
    assert data["skipped"] == SKIPPED
    assert not set(SKIPPED) & set(data["tasks"])


def test_a_machine_image_command_for_a_google_target_exits_2_saying_why(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TASK_ID", "fN1SbArXTPSVFNUvaOlinQ")
    monkeypatch.setenv("CIB_HEAD_REV", "0123456789abcdef0123456789abcdef01234567")
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    (tmp_path / ".platforms.yml").write_text("- amazon\n- azure\n")
    status = main(["image", "machine", "--key", "ubuntu-2404", "--target", "google/us-central1",
                   "--config-dir", str(tmp_path / "config"), "--artifacts",
                   str(tmp_path / "a")])
    assert status == 2
    assert f"google/us-central1: {GOOGLE}" in capsys.readouterr().err


# -- a fleet whose pools mix clouds -----------------------------------------------------------

def _target(platform: str, region: str) -> dict:
    target = {"platform": platform, "region": region, "bucket": f"images-{region}",
              "machine": {"type": "t3.large" if platform == "amazon" else "n2-standard-4"},
              "tag": [{"name": "workerType", "value": "linux-test"}],
              "bootstrap": {"executions": [{"name": "provision", "shell": "bash",
                                            "commands": ["poweroff"]}]}}
    if platform == "google":
        target.update(project="example-images", zone=f"{region}-a")
    return target


def _pool(variant: str, locations: list[str], platform: str | None) -> dict:
    pool = {"domain": "test", "variant": variant, "locations": locations, "owner": "o@example.com",
            "provider": {"amazon": "aws", "google": "google", None: "aws"}[platform],
            "capacity": {"minimum": 0, "maximum": 4}}
    return {**pool, "platform": platform} if platform else pool


def _key(targets: list[dict], pools: list[dict]) -> dict:
    return {"image": {"os": "Ubuntu 24.04", "architecture": "x86-64", "format": "RAW",
                      "source": {"url": "https://images.example.com/u.qcow2", "format": "qcow2"},
                      "target": {"platform": "amazon", "bucket": "disk-images"}},
            "manager": {"pool": pools}, "target": targets}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A repository whose `linux` key builds on AWS and Google and feeds an AWS pool, a Google
    pool and a pool with no platform running both; `gce` builds on Google alone."""
    repo = tmp_path_factory.mktemp("mixed") / "images"
    config = repo / "config"
    config.mkdir(parents=True)
    keys = {
        "linux": _key([_target("amazon", "us-east-1"), _target("google", "us-central1")],
                      [_pool("linux-aws", ["us-east-1"], "amazon"),
                       _pool("linux-gcp", ["us-central1"], "google"),
                       _pool("linux-both", ["us-east-1", "us-central1"], None)]),
        "gce": _key([_target("google", "us-central1")],
                    [_pool("gce", ["us-central1"], "google")]),
    }
    for name, content in keys.items():
        (config / f"{name}.yaml").write_text(yaml.safe_dump(content))
    shutil.copytree(ROOT / "taskcluster", repo / "taskcluster")
    (repo / ".platforms.yml").write_text("- amazon\n- azure\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a fleet on two clouds")
    return repo


def test_the_mixed_fleet_is_valid_config(mixed):
    fleet = load_fleet(DirectorySource(mixed / "config"))
    assert {t.platform for t in fleet.keys["linux"].targets} == {"amazon", "google"}
    linux = fleet.keys["linux"]
    assert [pool_not_built(linux, p, fleet) for p in linux.pools] == [None, GOOGLE, GOOGLE]


def test_a_pool_running_any_image_cib_cannot_build_is_not_deployed(mixed):
    data = plan_json(mixed, "--no-base")
    tasks = set(data["tasks"])
    assert {"disk-image-linux", "machine-image-linux-amazon-us-east-1", "tag-linux",
            "worker-pool-test-linux-aws", "verify-test-linux-aws"} <= tasks
    assert not [label for label in tasks if "google" in label or "gce" in label
                or "linux-gcp" in label or "linux-both" in label]
    assert data["skipped"] == {label: GOOGLE for label in (
        "machine-image-linux-google-us-central1",
        "worker-pool-test-linux-gcp", "verify-test-linux-gcp",
        # runs us-east-1's AWS image too, but is not redeployed without its Google location
        "worker-pool-test-linux-both", "verify-test-linux-both",
        # a key on Google alone: nothing to build, tag or deploy
        "disk-image-gce", "machine-image-gce-google-us-central1", "tag-gce",
        "worker-pool-test-gce", "verify-test-gce")}

"""Worker-pool deploys record the release in the pool's history; `cib rollback` redeploys an
earlier one exactly, against the local Taskcluster (`dev_taskcluster`)."""

from __future__ import annotations

import shutil

import pytest
import yaml

import taskcluster
from cib_decision import manifest, pools
from cib_decision.lifecycle import pointers
from cib_decision.naming import pr_pool_id
from cib_decision.signing import SigningKey, sign_release

from .conftest import CONFIG_DIR
from .pools_support import cib, in_task, release_of, task  # noqa: F401 (a fixture, used by name)
from .signing_keys import generate

AZURE = "gecko-t/win10-64-azure"
# Every test runs `cib` as a task of the branch:main role would, in staging; `monkeypatch` is
# the fixture's own.
pytestmark = pytest.mark.usefixtures("in_task")


def deploy(dev, monkeypatch, capsys, release, *extra):
    """What a push's tag and worker-pool tasks do: the tag task leaves the release, the
    worker-pool task deploys the pool from it with `cib pool apply`. The tag task's id."""
    tag = task(dev)
    dev.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: release.to_json()})
    monkeypatch.setenv("TASK_ID", task(dev, [tag]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                       AZURE, *extra)
    monkeypatch.delenv("TASK_ID")
    assert code == 0, err
    return tag


def served(dev):
    return pools.comparable(dev.worker_pools()[AZURE])


def history(dev):
    index = taskcluster.Index({"rootUrl": dev.root_url})
    return [(e.action, e.release.sha256, e.release.task_id)
            for e in pointers.history(index, "staging", AZURE)]


def rollback(capsys, *args):
    return cib(capsys, "rollback", "--pool", AZURE, "--config-dir", str(CONFIG_DIR), *args)


def test_a_deploy_records_the_release_in_the_pool_history_and_the_key_pointer(
        dev_taskcluster, monkeypatch, capsys):
    first = release_of(AZURE)
    tag = deploy(dev_taskcluster, monkeypatch, capsys, first)
    deploy(dev_taskcluster, monkeypatch, capsys, first)  # the task run again: nothing new
    assert history(dev_taskcluster) == [("deploy", first.sha256, tag)]
    index = taskcluster.Index({"rootUrl": dev_taskcluster.root_url})
    current = pointers.find(index, pointers.release_path("staging", "win10-64"))
    assert (current.release.sha256, current.release.task_id) == (first.sha256, tag)


def test_a_per_pr_pool_deploy_records_no_pointer(dev_taskcluster, monkeypatch, capsys):
    deploy(dev_taskcluster, monkeypatch, capsys, release_of(AZURE), "--pull-request", "5")
    assert pr_pool_id(AZURE, 5) in dev_taskcluster.worker_pools()
    assert history(dev_taskcluster) == []
    assert "index.insertTask" not in dev_taskcluster.stats()["requests"]


def test_rollback_restores_exactly_the_definition_of_the_previous_release(
        dev_taskcluster, monkeypatch, capsys):
    first, second = release_of(AZURE), release_of(AZURE, build=1)
    tag1 = deploy(dev_taskcluster, monkeypatch, capsys, first)
    after_first = served(dev_taskcluster)
    tag2 = deploy(dev_taskcluster, monkeypatch, capsys, second)
    assert served(dev_taskcluster) != after_first
    code, _, err = rollback(capsys)
    assert code == 0, err
    assert served(dev_taskcluster) == after_first
    assert history(dev_taskcluster) == [("deploy", first.sha256, tag1),
                                        ("deploy", second.sha256, tag2),
                                        ("rollback", first.sha256, tag1)]
    assert f"rolling back to {first.sha256[:12]}" in err
    code, _, err = rollback(capsys)  # nothing earlier than the first release
    assert code == 2 and "no earlier release" in err and "Traceback" not in err


def test_rollback_to_a_named_release_and_to_one_outside_the_history(
        dev_taskcluster, monkeypatch, capsys):
    releases = [release_of(AZURE, build=n) for n in range(3)]
    tags = [deploy(dev_taskcluster, monkeypatch, capsys, r) for r in releases[:1]]
    after_first = served(dev_taskcluster)
    tags += [deploy(dev_taskcluster, monkeypatch, capsys, r) for r in releases[1:]]
    before = dev_taskcluster.stats()["requests"].get("worker-manager.updateWorkerPool", 0)
    code, _, err = rollback(capsys, "--to", "ab" * 32)
    assert code == 2 and "is not in the history" in err and "Traceback" not in err
    assert dev_taskcluster.stats()["requests"].get("worker-manager.updateWorkerPool",
                                                   0) == before
    code, _, err = rollback(capsys, "--to", tags[0])  # by the task holding it
    assert code == 0, err
    assert served(dev_taskcluster) == after_first
    code, _, err = rollback(capsys, "--to", releases[2].sha256[:12], "--dry-run")
    assert code == 0 and "would update" in err
    assert served(dev_taskcluster) == after_first
    code, out, _ = rollback(capsys, "--list")
    assert [line.split()[2] for line in out.splitlines()] == ["deploy"] * 3 + ["rollback"]


def test_rollback_refuses_a_release_whose_record_fails_its_seal(dev_taskcluster, monkeypatch,
                                                                capsys):
    deploy(dev_taskcluster, monkeypatch, capsys, release_of(AZURE))
    deploy(dev_taskcluster, monkeypatch, capsys, release_of(AZURE, build=1))
    index = taskcluster.Index(dev_taskcluster.options())
    forged = pointers.ReleaseRef("win10-64", "ef" * 32, task(dev_taskcluster))
    data = release_of(AZURE, build=2).to_json()
    data["images"][0]["id"] = data["images"][0]["id"].replace("/images/", "/images/x")
    dev_taskcluster.resolve_task(forged.task_id,
                                 artifacts={manifest.RELEASE_ARTIFACT: data})
    pointers.record_pool(index, "staging", AZURE, forged, "deploy", lambda _: None)
    pointers.record_pool(index, "staging", AZURE, pointers.history(
        index, "staging", AZURE)[0].release, "deploy", lambda _: None)
    code, _, err = rollback(capsys, "--to", forged.sha256)
    assert code == 2 and "fails verification" in err


@pytest.mark.parametrize("option", [[], ["--environment", "nowhere"]])
def test_rollback_needs_a_known_environment(dev_taskcluster, monkeypatch, capsys, option):
    monkeypatch.delenv("CIB_ENVIRONMENT")
    code, _, err = rollback(capsys, *option)
    assert code == 2 and "environment" in err


@pytest.fixture
def signing_config(tmp_path):
    """The bundled config, its staging environment signing releases with a test key (public
    key in the repository beside the config, as `signing.public-key` names it)."""
    key = generate("rollback-signer")
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    environments["staging"]["signing"] = {
        "secret": "project/cib/level-{level}/release-signing",
        "public-key": "keys/release-level-{level}.asc"}
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release-level-3.asc").write_text(key.public)
    return config, SigningKey.from_secret(key.secret(), "test")


def test_in_a_signing_environment_rollback_refuses_an_unsigned_release(
        dev_taskcluster, monkeypatch, capsys, signing_config):
    config, _ = signing_config
    deploy(dev_taskcluster, monkeypatch, capsys, release_of(AZURE))
    deploy(dev_taskcluster, monkeypatch, capsys, release_of(AZURE, build=1))
    before = served(dev_taskcluster)
    code, _, err = rollback(capsys, "--config-dir", str(config))
    assert code == 2 and "signature" in err
    assert served(dev_taskcluster) == before
    assert [action for action, _, _ in history(dev_taskcluster)] == ["deploy", "deploy"]


def test_in_a_signing_environment_rollback_redeploys_a_signed_release(
        dev_taskcluster, monkeypatch, capsys, signing_config):
    config, key = signing_config
    first, _ = sign_release(release_of(AZURE), key)
    second, _ = sign_release(release_of(AZURE, build=1), key)
    deploy(dev_taskcluster, monkeypatch, capsys, first, "--config-dir", str(config))
    after_first = served(dev_taskcluster)
    deploy(dev_taskcluster, monkeypatch, capsys, second, "--config-dir", str(config))
    code, _, err = rollback(capsys, "--config-dir", str(config))
    assert code == 0, err
    assert "signed by" in err
    assert served(dev_taskcluster) == after_first


def released(dev_taskcluster) -> tuple:
    """A release of win10-64 left by a tag task and named staging's current release; the
    release and that task's id."""
    release = release_of(AZURE)
    tag = task(dev_taskcluster)
    dev_taskcluster.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: release.to_json()})
    index = taskcluster.Index(dev_taskcluster.options())
    pointers.set_release(index, "staging", pointers.ReleaseRef("win10-64", release.sha256, tag),
                         "deploy", lambda _: None)
    return release, tag


def test_a_deploy_without_new_images_takes_the_keys_current_release(
        dev_taskcluster, monkeypatch, capsys):
    """`pool-deploy`: the worker-pool task has no builds to read; the pool gets the images of
    the key's current release in the environment, and its history records them."""
    release, tag = released(dev_taskcluster)
    monkeypatch.setenv("TASK_ID", task(dev_taskcluster))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AZURE)
    assert code == 0, err
    assert f"deploying win10-64's current release in staging, {release.sha256[:12]}" in err
    deployed = dev_taskcluster.worker_pools()[AZURE]
    ids = {c["storageProfile"]["imageReference"]["id"]
           for c in deployed["config"]["launchConfigs"]}
    assert ids == {image.id for image in release.images}
    assert history(dev_taskcluster) == [("deploy", release.sha256, tag)]


def test_a_deploy_without_new_images_or_a_current_release_keeps_what_runs(
        dev_taskcluster, monkeypatch, capsys, tmp_path):
    release_file = tmp_path / "release.json"
    release_file.write_text(manifest.dumps(release_of(AZURE)))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AZURE,
                       "--release", str(release_file))  # by hand: no pointer recorded
    assert code == 0, err
    before = served(dev_taskcluster)
    monkeypatch.setenv("TASK_ID", task(dev_taskcluster))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AZURE)
    assert code == 0, err
    assert "win10-64 has no current release in staging" in err
    assert served(dev_taskcluster) == before
    assert history(dev_taskcluster) == []


def test_a_per_pr_pool_without_new_images_takes_the_keys_current_release_and_records_nothing(
        dev_taskcluster, monkeypatch, capsys):
    """A pull request that changes only a pool rebuilds no image: its new per-PR pool gets
    the images of the key's current release (it has no definition of its own to keep images
    from), and no pointer moves."""
    release, _ = released(dev_taskcluster)
    monkeypatch.setenv("TASK_ID", task(dev_taskcluster))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AZURE,
                       "--pull-request", "4", "--ttl", "1 day")
    assert code == 0, err
    assert f"deploying win10-64's current release in staging, {release.sha256[:12]}" in err
    pr_pool = pr_pool_id(AZURE, 4)
    deployed = dev_taskcluster.worker_pools()[pr_pool]
    ids = {c["storageProfile"]["imageReference"]["id"]
           for c in deployed["config"]["launchConfigs"]}
    assert ids == {image.id for image in release.images}
    assert history(dev_taskcluster) == []

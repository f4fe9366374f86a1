"""Signed releases end to end: `cib image tag` in a task of an environment that signs its
releases reads the signing key from the local Taskcluster's secrets service and signs
`public/release.json`; `cib release verify --public-key` accepts it; a pool deploy refuses the
record once it is changed (and resealed) or unsigned. The builds run through boto3 against
moto, as in test_image_tag."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml

import taskcluster
from cib_decision import manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.scopes import missing_scopes, role_for_event, role_scopes
from cib_decision.taskgraph import fleet as graph_fleet

from .conftest import CONFIG_DIR
from .graphs import generator, pr
from .scopes_support import ROLES, created_tasks
from .signing_keys import generate
from .tag_support import Fleet, cib, env, record_of, run_tag, tag_task  # noqa: F401

SECRET = "project/cib/level-3/release-signing"
SIGNING_ENVIRONMENTS = """\
staging:
    root-url: https://tc-staging.example.com
    pull-requests: true
    signing:
        secret: project/cib/level-{level}/release-signing
        public-key: keys/release-level-{level}.asc
"""


@pytest.fixture
def signed_fleet(tmp_path, dev_taskcluster, env):  # noqa: F811
    """linux-test built in us-east-1 with a pool there, in an environment
    that signs its releases; the signing key in its secret; the tag task as the current
    task."""
    key = generate("release-signer")
    fleet = Fleet(tmp_path, dev_taskcluster, aws_targets=("us-east-1",),
                  pool_locations=("us-east-1",))
    key_file = fleet.config / "linux-test.yaml"
    content = yaml.safe_load(key_file.read_text())
    content["manager"]["pool"][0]["owner"] = "relops@example.com"
    key_file.write_text(yaml.safe_dump(content))
    (fleet.config / "environments.yaml").write_text(SIGNING_ENVIRONMENTS)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release-level-3.asc").write_text(key.public)
    dev_taskcluster.set_secret(SECRET, key.secret())
    env.setenv("CIB_LEVEL", "3")
    disk = fleet.disk_image()
    build = fleet.machine_image("linux-test", "amazon/us-east-1", disk)
    tag_task(env, dev_taskcluster, [build], datetime.now(UTC))
    return fleet, key


def pool_apply(capsys, env, fleet, release_path):  # noqa: F811
    """`cib pool apply --dry-run` of the fleet's pool from a release file, outside a task."""
    env.delenv("TASK_ID", raising=False)
    pool = next(iter(load_fleet(DirectorySource(fleet.config)).pools))
    return cib(capsys, "pool", "apply", "--config-dir", str(fleet.config), "--environment",
               "staging", "--pool", pool, "--release", str(release_path), "--dry-run")


def test_the_tag_task_signs_the_release_and_release_verify_accepts_the_signature(
        signed_fleet, dev_taskcluster, capsys):
    fleet, key = signed_fleet
    code, out, err = run_tag(capsys, fleet)
    assert code == 0, err
    assert f"with key {key.fingerprint} (secret {SECRET})" in out
    record = record_of(fleet)
    assert record["signature"].startswith("-----BEGIN PGP SIGNATURE-----")
    path = fleet.tmp_path / "artifacts" / "release.json"
    public_key = fleet.tmp_path / "keys" / "release-level-3.asc"
    code, out, err = cib(capsys, "release", "verify", str(path), "--public-key",
                         str(public_key))
    assert code == 0, err
    assert out.strip().endswith(f"sha256 {record['sha256']}, signed by {key.fingerprint}")
    other = fleet.tmp_path / "other.asc"
    other.write_text(generate("someone-else").public)
    code, _, err = cib(capsys, "release", "verify", str(path), "--public-key", str(other))
    assert code == 2 and "not by the expected key" in err and "Traceback" not in err


def test_without_the_signing_secret_the_tag_task_fails_before_tagging(
        signed_fleet, dev_taskcluster, capsys):
    fleet, _ = signed_fleet
    taskcluster.Secrets(dev_taskcluster.options()).remove(SECRET)
    code, out, err = run_tag(capsys, fleet)
    assert code == 2
    assert f"error: no secret {SECRET} (missing or expired)" in err
    assert "tagged " not in out
    assert not (fleet.tmp_path / "artifacts" / "release.json").exists()


def test_a_pool_deploy_takes_the_signed_release_and_refuses_it_tampered_or_unsigned(
        signed_fleet, env, capsys):  # noqa: F811
    fleet, _ = signed_fleet
    assert run_tag(capsys, fleet)[0] == 0
    signed = manifest.parse_release(record_of(fleet))
    path = fleet.tmp_path / "deploy.json"
    path.write_text(manifest.dumps(signed))
    code, out, err = pool_apply(capsys, env, fleet, path)
    assert code == 0, err
    assert "signed by" in err
    assert signed.images[0].id in out

    # An image id swapped and the seal recomputed: the seal holds, the signature does not.
    swapped = replace(signed.images[0], id="ami-0000000000000bad0")
    body = replace(signed, images=(swapped,)).body()
    tampered = {**body, "sha256": manifest.release_sha256(body), "signature": signed.signature}
    path.write_text(json.dumps(tampered))
    code, _, err = pool_apply(capsys, env, fleet, path)
    assert code == 2
    assert "the signature does not match the record's content" in err
    assert "Traceback" not in err

    path.write_text(manifest.dumps(replace(signed, signature=None)))
    code, _, err = pool_apply(capsys, env, fleet, path)
    assert code == 2 and "is not signed, and a signature is required" in err


# --- the tag task's scopes ------------------------------------------------------------------


@pytest.fixture
def signing_everywhere(tmp_path, monkeypatch, graph_env):
    """The bundled fleet with both environments signing, as the graph loads it."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    for environment in environments.values():
        environment["signing"] = {"secret": "project/cib/level-{level}/release-signing",
                                  "public-key": "keys/release-level-{level}.asc"}
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    fleet = load_fleet(DirectorySource(config))
    monkeypatch.setitem(graph_fleet._loaded, CONFIG_DIR,
                        graph_fleet.GraphFleet(fleet, fleet_digests(fleet)))


@pytest.mark.parametrize("make, level", [(lambda: generator("commit\n\noverwrite-machine-image"),
                                          "3"),
                                         (lambda: pr("commit", changed=None), "1")])
def test_tag_tasks_may_read_their_levels_signing_secret_within_their_role(
        signing_everywhere, index, make, level):
    tgg = make()
    granted = role_scopes(ROLES, role_for_event(tgg.parameters["tasks_for"]), project="images")
    tags = [(label, task) for label, task in created_tasks(tgg) if label.startswith("tag-")]
    assert tags
    for label, definition in tags:
        assert f"secrets:get:project/cib/level-{level}/release-signing" in definition["scopes"]
        assert definition["payload"]["env"]["CIB_LEVEL"] == level
        assert missing_scopes(definition, granted) == [], label

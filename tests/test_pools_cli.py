"""`cib pool render` (offline) and the command line's errors: one message, exit 2."""

from __future__ import annotations

import json

import pytest
import yaml

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.naming import pr_pool_id

from . import tcschemas
from .conftest import CONFIG_DIR
from .pools_support import release_of

AZURE = "gecko-t/win10-64-azure"


@pytest.fixture
def release_file(tmp_path):
    path = tmp_path / "release.json"
    path.write_text(manifest.dumps(release_of(AZURE)))
    return path


def run(capsys, *args):
    try:
        code = main(["pool", *args])
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


def test_render_prints_the_definitions_of_the_pools_whose_images_are_given(capsys,
                                                                           release_file):
    tcschemas.store()  # the definitions are validated: skip without the genuine schemas
    code, out, _ = run(capsys, "render", "--config-dir", str(CONFIG_DIR),
                       "--release", str(release_file))
    assert code == 0
    definitions = json.loads(out)
    assert list(definitions) == [AZURE]  # win10-64 feeds one pool
    assert len(definitions[AZURE]["config"]["launchConfigs"]) == 3


def test_render_of_a_per_pr_pool_as_yaml(capsys, release_file):
    tcschemas.store()
    code, out, _ = run(capsys, "render", "--config-dir", str(CONFIG_DIR), "--release",
                       str(release_file), "--pull-request", "9", "--ttl", "2 days",
                       "--environment", "staging", "--format", "yaml")
    assert code == 0
    assert list(yaml.safe_load(out)) == [pr_pool_id(AZURE, 9)]


def test_render_without_records_refuses_to_invent_image_ids(capsys):
    code, _, err = run(capsys, "render", "--config-dir", str(CONFIG_DIR))
    assert code == 2
    assert "give --release FILE" in err and "Traceback" not in err


def test_render_refuses_a_release_that_fails_verification(capsys, tmp_path):
    data = release_of(AZURE).to_json()
    data["config_commit"] = "f" * 40
    path = tmp_path / "release.json"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "render", "--config-dir", str(CONFIG_DIR),
                       "--release", str(path))
    assert code == 2
    assert "fails verification" in err


def test_render_of_a_named_pool_without_images_says_it_would_have_no_launch_config(
        capsys, release_file):
    code, _, err = run(capsys, "render", "--config-dir", str(CONFIG_DIR), "--release",
                       str(release_file), "--pool", "gecko-1/win2022-64-aws")
    assert code == 2
    assert "would have no launch config" in err


CONFIG = ("--config-dir", str(CONFIG_DIR))


@pytest.mark.parametrize("args, message", [
    (["render", *CONFIG, "--release", "missing.json"], "cannot read missing.json"),
    (["render", *CONFIG, "--release", "RELEASE", "--ttl", "soon", "--pull-request", "3"],
     "not a duration"),
    (["render", *CONFIG, "--release", "RELEASE", "--environment", "prod"],
     "no environment 'prod'"),
    (["sweep", "--now", "tomorrow"], "--now 'tomorrow' is not an ISO 8601 time"),
    (["teardown", "--pull-request", "0"], "'0' is not a whole number from 1 to"),
    (["teardown", "--pull-request", "-5"], "'-5' is not a whole number from 1 to"),
    (["teardown", "--pull-request", "9" * 25], "is not a whole number from 1 to"),
])
def test_bad_arguments_are_one_clear_error(capsys, release_file, args, message):
    code, _, err = run(capsys, *(str(release_file) if a == "RELEASE" else a for a in args))
    assert code == 2
    assert message in err and "Traceback" not in err


def test_commands_that_need_taskcluster_say_so_without_it(capsys, monkeypatch):
    for name in ("TASKCLUSTER_PROXY_URL", "TASKCLUSTER_ROOT_URL", "TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "sweep")
    assert code == 2
    assert "no Taskcluster deployment: set TASKCLUSTER_ROOT_URL" in err

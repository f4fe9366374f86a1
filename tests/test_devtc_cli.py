"""`cib dev-taskcluster`: serves in the foreground, prints how to reach it, stops on Ctrl-C;
bad arguments and missing schemas are one clear error with exit status 2."""

from __future__ import annotations

import pytest
import slugid

import taskcluster
from cib_decision.cli import main
from cib_decision.devtc.testing import new_task, require_schemas

from .devtc_support import dev_taskcluster_process


def test_missing_schemas_are_an_error_with_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIB_TASKCLUSTER_SCHEMAS", str(tmp_path / "absent"))
    assert main(["dev-taskcluster"]) == 2
    assert capsys.readouterr().err.startswith("error: no Taskcluster schemas at ")
    assert main(["dev-taskcluster", "--schemas", str(tmp_path / "absent")]) == 2
    assert "no Taskcluster schema directory" in capsys.readouterr().err


def test_schema_directory_without_references_is_an_error_with_status_2(tmp_path, capsys):
    schemas = tmp_path / "taskcluster" / "schemas"
    schemas.mkdir(parents=True)
    assert main(["dev-taskcluster", "--schemas", str(schemas)]) == 2
    assert "cannot read the Taskcluster API references" in capsys.readouterr().err


def test_unknown_provider_type_and_missing_roles_file_are_errors(tmp_path, capsys):
    require_schemas()
    assert main(["dev-taskcluster", "--provider", "x=openstack"]) == 2
    assert "unknown provider type(s) openstack" in capsys.readouterr().err
    assert main(["dev-taskcluster", "--roles", str(tmp_path / "roles.yml")]) == 2
    assert "no roles file" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [["--provider", "azure2"], ["--error-rate", "2"],
                                       ["--latency-ms", "-1"]])
def test_malformed_options_are_usage_errors(arguments):
    with pytest.raises(SystemExit) as info:
        main(["dev-taskcluster", *arguments])
    assert info.value.code == 2


def test_serves_until_interrupted_and_prints_root_url_and_credentials(tmp_path):
    require_schemas()
    roles = tmp_path / "roles.yml"
    roles.write_text("deploy:\n  - queue:scheduler-id:cib-level-3\n"
                     "  - queue:create-task:project:{project}\n"
                     "  - queue:create-task:lowest:cib-3/*\n")
    with dev_taskcluster_process("--roles", str(roles), "--project", "none") as (root_url,
                                                                               lines):
        assert lines[1].split() == ["root", "clientId=static/taskcluster/root",
                                    "accessToken=sekrit"]
        assert lines[2].split() == ["deploy", "clientId=dev/deploy", "accessToken=sekrit"]
        q = taskcluster.Queue({"rootUrl": root_url, "maxRetries": 0, "credentials": {
            "clientId": "dev/deploy", "accessToken": "sekrit"}})
        assert q.createTask(slugid.nice(), new_task())["status"]["state"] == "pending"

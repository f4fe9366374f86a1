"""The predecessor's validation rules (`validation.instance.log`), honoured: matched against the
builder's logs (AWS console output, the Azure run command's output) before capture; a missed
rule fails the build naming the rule and what was searched, and the builder is cleaned up."""

from __future__ import annotations

import json
import shutil
import subprocess

import boto3
import pytest
import yaml

from cib_decision import manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.model import LogRule
from cib_decision.devclouds.azure_fake import RunCommandOutcome
from cib_decision.errors import ConfigError
from cib_decision.images.bootstrap import bash_script
from cib_decision.images.validation import (
    CollectedLog,
    ValidationFailed,
    check_rules,
    describe,
    program_lines,
)

from . import azure_build_support as azure_builds
from .aws_build_support import Bootstrap, aws, build, leftovers, publish_base_images  # noqa: F401
from .azure_build_support import build_env, running_fake

RULES = {"instance": {"log": [
    {"program": "cib", "match": r"all \d+ executions passed"},
    {"program": "provision", "match": "local cloud"},
]}}


# --- matching (pure) ---------------------------------------------------------------------------


def test_program_lines_reads_syslog_forms_with_and_without_time_host_and_pid():
    log = ("Dec  6 12:00:01 ip-10-0-0-1 cloud-init[812]: Cloud-init v. 24.1 finished\n"
           "sysprep-setupact: [audit.exe] Successfully launched Sysprep\n"
           "[   12.5] a kernel line without a program\n"
           "OpenCloudConfig: Invoke-Shutdown :: sysprep state: IMAGE_STATE_UNDEPLOYABLE\r\n")
    assert program_lines(log) == {
        "cloud-init": ["Cloud-init v. 24.1 finished"],
        "sysprep-setupact": ["[audit.exe] Successfully launched Sysprep"],
        "opencloudconfig": ["Invoke-Shutdown :: sysprep state: IMAGE_STATE_UNDEPLOYABLE"]}


def test_a_rule_passes_on_a_matching_line_of_its_program_only():
    log = "provision: done\nother: installed ok\n"
    passed, wrong_program, no_match = check_rules(
        [LogRule("Provision", "^done$"), LogRule("missing", "ok"),
         LogRule("other", "failed")], log)
    assert passed.passed and passed.lines == 1
    assert not wrong_program.passed and wrong_program.lines == 0
    assert not no_match.passed and no_match.lines == 1
    collected = CollectedLog(log, ("the console output of i-1",))
    assert describe(wrong_program, collected) == (
        "rule 'missing' /ok/ missed: no line of program 'missing' in the console output of "
        "i-1 (2 lines)")
    assert describe(no_match, collected) == (
        "rule 'other' /failed/ missed: none of the 1 line of program 'other' in the console "
        "output of i-1 matches")


def test_the_predecessors_rules_match_the_lines_they_were_written_for(reference_config):
    raw = yaml.safe_load((reference_config / "win2012.yaml").read_text())
    rules = [LogRule(r["program"], r["match"]) for r in raw["validation"]["instance"]["log"]]
    log = ("Nov 30 10:00:00 host sysprep-setupact: 2020-05-01 [audit.exe] Successfully launched "
           "Sysprep with command line [C:\\Windows\\system32\\sysprep\\sysprep.exe  /Generalize "
           "/oobe /shutdown]\n"
           "Nov 30 10:00:01 host OpenCloudConfig: Invoke-Shutdown :: sysprep state: "
           "IMAGE_STATE_UNDEPLOYABLE, returning control to sysprep with exit code: 0\n")
    assert [r.passed for r in check_rules(rules, log)] == [True, True]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to run the bootstrap")
def test_the_real_bootstrap_writes_the_lines_rules_name(tmp_path):
    script = bash_script([{"name": "provision", "shell": "bash",
                           "commands": ["echo installing", "echo 'done: 3 packages'"]},
                          {"name": "cleanup", "shell": "bash", "commands": ["true"]}])
    (tmp_path / "bootstrap.sh").write_text(script.replace("\npoweroff\n", "\n"))
    output = subprocess.run(["bash", str(tmp_path / "bootstrap.sh")], capture_output=True,
                            text=True, check=True).stdout
    rules = [LogRule("provision", r"done: \d+ packages"),
             LogRule("cib", "all 2 executions passed"), LogRule("cleanup", ".")]
    assert [r.passed for r in check_rules(rules, output)] == [True, True, False]


# --- the config --------------------------------------------------------------------------------


def test_a_rule_that_is_not_a_regular_expression_is_a_config_error_at_its_line(fleet_dir):
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text() + "validation:\n  instance:\n    log:\n"
                    "      - program: cib\n        match: 'all ( passed'\n")
    with pytest.raises(ConfigError) as raised:
        load_fleet(DirectorySource(str(fleet_dir)))
    line = len(path.read_text().splitlines())
    assert f"win10-64.yaml:{line}: validation.instance.log[0].match 'all ( passed' is not " \
           "a regular expression: missing ), unterminated subpattern" in str(raised.value)


def test_a_rule_without_a_pattern_is_refused(fleet_dir):
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text() + "validation:\n  instance:\n    log:\n"
                    "      - program: cib\n")
    with pytest.raises(ConfigError, match="match"):
        load_fleet(DirectorySource(str(fleet_dir)))


# --- AWS ---------------------------------------------------------------------------------------


def test_aws_a_build_whose_console_has_every_rule_records_them(tmp_path, aws):  # noqa: F811
    publish_base_images()
    record, _ = build(tmp_path, validation=RULES)
    rules = record.validation["rules"]
    assert [(r["program"], r["passed"]) for r in rules] == [("cib", True), ("provision", True)]
    log = (tmp_path / "artifacts" / "builder.log").read_text()
    assert "cib: all 1 executions passed" in log
    assert record.validation["log_sha256"] == CollectedLog(log, ()).sha256
    written = json.loads((tmp_path / "artifacts" / "machine-image.json").read_text())
    assert manifest.parse_machine_image(written).validation == record.validation
    assert "the builder of amazon/us-east-1 passed 2 validation rules" in build.log


def test_aws_the_programs_of_the_keys_log_are_published_one_file_each(tmp_path,
                                                                      aws):  # noqa: F811
    publish_base_images()
    build(tmp_path, log=("cib", "provision", "sysprep/setupact"))
    published = tmp_path / "artifacts" / "builder-logs"
    assert sorted(p.name for p in published.iterdir()) == [
        "cib.log", "provision.log", "sysprep_setupact.log"]
    assert (published / "cib.log").read_text() == "provision passed\nall 1 executions passed\n"
    assert (published / "provision.log").read_text() == "(the local cloud runs no commands)\n"
    assert (published / "sysprep_setupact.log").read_text() == ""


def test_aws_a_missed_rule_fails_the_build_before_capture_and_cleans_up(tmp_path,
                                                                        aws):  # noqa: F811
    publish_base_images()
    console = "cib: provision failed (attempt 1)\nprovision: E: no space left\n"
    with pytest.raises(ValidationFailed) as raised:
        build(tmp_path, validation=RULES, bootstrap=Bootstrap(console=console))
    message = str(raised.value)
    assert raised.value.exit_code == 3
    assert "missed 2 of 2 validation rules; its image is not captured" in message
    assert "rule 'cib' /all \\d+ executions passed/ missed: none of the 1 line of program " \
           "'cib' in the console output of i-" in message
    assert "rule 'provision' /local cloud/ missed: none of the 1 line" in message
    assert leftovers() == {"instances": [], "groups": [], "keys": [], "volumes": []}
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert (tmp_path / "artifacts" / "builder.log").read_text() == console


def test_aws_keep_resources_keeps_the_builder_whose_rules_missed(tmp_path, aws):  # noqa: F811
    publish_base_images()
    with pytest.raises(ValidationFailed):
        build(tmp_path, validation=RULES, keep=True, bootstrap=Bootstrap(console=""))
    assert len(leftovers()["instances"]) == 1
    assert "no line of program 'cib' in the console output of i-" in build.log


# --- Azure -------------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    build_env(monkeypatch)
    with running_fake() as served:
        yield served


def test_azure_rules_are_matched_against_the_run_commands_output(tmp_path, fake):
    record, _ = azure_builds.build(tmp_path, validation=RULES)
    assert [r["passed"] for r in record.validation["rules"]] == [True, True]
    assert record.validation["sources"][0].startswith("the run command's output on ")


def test_azure_a_missed_rule_captures_nothing_and_cleans_up(tmp_path, fake):
    fake.on_run_command = lambda vm, command: RunCommandOutcome(
        stdout="provision: the local cloud ran it\n", power="stopped")
    with pytest.raises(ValidationFailed, match=r"missed 1 of 2 validation rules(.|\n)*rule "
                                               r"'cib' /all \\d\+ executions passed/ missed: "
                                               "no line of program 'cib'"):
        azure_builds.build(tmp_path, validation=RULES)
    assert fake.resources("Microsoft.Compute/images") == []
    assert azure_builds.builder_leftovers(fake) == azure_builds.NOTHING_LEFT


# --- what an execution's `test` means ------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to run the bootstrap")
def test_an_execution_that_stops_the_machine_runs_once_and_ends_the_bootstrap(tmp_path):
    script = bash_script([
        {"name": "check", "shell": "bash", "commands": ["echo ready"],
         "test": {"std": {"out": {"match": "ready"}}}},
        {"name": "provision", "shell": "bash", "commands": ["echo provisioning", "exit 3"],
         "test": {"status": {"code": {"match": "stopped"}}},
         "on": {"failure": "retest after 15 seconds"}},
        {"name": "never", "shell": "bash", "commands": ["echo never"]}])
    assert "poweroff" not in script and "never" not in script
    (tmp_path / "bootstrap.sh").write_text(script)
    done = subprocess.run(["bash", str(tmp_path / "bootstrap.sh")], capture_output=True,
                          text=True)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "check: ready", "cib: check passed", "provision: provisioning",
        "cib: provision ran; the machine is to stop (stopped)"]


@pytest.mark.parametrize("execution, message", [
    ({"match": {"format": ".*"}}, "match"),  # cloud-image-builder's January 2020 experiment
    ({"commands": [{"format": "{0}", "tokens": ["a"], "exec": True}]}, "exec"),
    ({"commands": [{"format": "echo"}]}, "tokens"),
    ({"test": {"std": {"err": {"match": "x"}}}}, "err"),
    ({"test": {"status": {"code": {"match": "running"}}}}, "expected one of stopped"),
])
def test_an_execution_field_the_bootstrap_would_ignore_is_refused(fleet_dir, execution,
                                                                   message):
    path = fleet_dir / "win10-64.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["target"][0]["bootstrap"] = {"executions": [
        {"name": "x", "shell": "powershell", **execution}]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_fleet(DirectorySource(str(fleet_dir)))

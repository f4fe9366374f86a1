"""What a new user hit first: a config check that passed an empty folder, commands that did
not find the repository's config from a subdirectory, plan tables that cut long labels, and
options ignored without a word."""

from __future__ import annotations

import json
import os

import pytest

from cib_decision.cli import main
from cib_decision.config.source import default_config_dir

from .repos import cib_output, fleet_repo


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_config_folder_without_keys_is_not_ok(capsys, tmp_path):
    (tmp_path / "environments.yaml").write_text(
        "production:\n    root-url: https://tc.example.com\n")
    code, out, err = run(capsys, "config", "check", "--config-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert "no image key" in err and "is this the config directory?" in err


def test_commands_find_the_repositorys_config_from_a_subdirectory(capsys, tmp_path,
                                                                  monkeypatch):
    repo = fleet_repo(tmp_path / "images")
    (repo / "docs" / "deep").mkdir(parents=True)
    monkeypatch.chdir(repo / "docs" / "deep")
    assert default_config_dir() == os.path.join("..", "..", "config")
    code, out, err = run(capsys, "config", "check")
    assert code == 0, err
    assert out.startswith("../../config: OK (5 keys")
    message = tmp_path / "message.txt"
    message.write_text("Rebuild\n\ninclude keys: win10-64\n")
    code, out, err = run(capsys, "directives", str(message))
    assert code == 0 and '"win10-64"' in out, err


def test_outside_a_repository_the_config_directory_is_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_config_dir() == "config"


def test_a_pull_request_number_for_a_push_plan_is_an_error_not_ignored(capsys):
    code, _out, err = run(capsys, "plan", "--no-base", "--pull-request", "5")
    assert code == 2 and "--tasks-for github-pull-request" in err


def test_the_plan_table_never_cuts_a_label(tmp_path):
    repo = fleet_repo(tmp_path / "images")
    long_name = "win10-64-with-a-very-long-name-that-makes-every-label-longer-than-a-column"
    (repo / "config" / "win10-64.yaml").rename(repo / "config" / f"{long_name}.yaml")
    # each in a process of its own: taskgraph registers one graph root per process
    labels = json.loads(cib_output("plan", "--repo", str(repo), "--no-base", "--format", "json")
                        )["tasks"]
    assert any(long_name in label for label in labels)
    out = cib_output("plan", "--repo", str(repo), "--no-base")
    assert "\u2026" not in out  # rich's ellipsis
    lines = out.splitlines()
    width = lines[0].index("kind")  # the label column, its rows folded onto more lines
    column = "".join(line[:width].strip() for line in lines[1:])
    assert all(label in column for label in labels)


@pytest.mark.parametrize("interrupt, code, said", [
    (KeyboardInterrupt, 130, "error: interrupted by SIGINT"),
    ("terminated", 143, "error: interrupted by SIGTERM"),
])
def test_an_interrupted_command_says_so_and_exits_with_the_signals_status(
        capsys, interrupt, code, said):
    import argparse

    from cib_decision.cli import Terminated, _run

    def command(args):
        raise Terminated() if interrupt == "terminated" else interrupt()

    assert _run(argparse.Namespace(command="plan", func=command)) == code
    assert capsys.readouterr().err == f"{said}\n"

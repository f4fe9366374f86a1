"""Input errors as the GitHub check run shows them: config problems as annotations on their
files and lines (at most GitHub's 50), directive problems in the text, within the budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cib_decision.checkrun_errors import (
    MAX_ANNOTATIONS,
    MAX_TEXT,
    annotations,
    error_text,
    write_error_report,
)
from cib_decision.cli import main
from cib_decision.directives import DirectiveError, DirectiveProblem
from cib_decision.errors import CibError, ConfigError, Problem

from .conftest import CONFIG_DIR


def test_config_check_writes_the_annotations_of_each_problem_relative_to_the_repository(
        tmp_path, capsys, monkeypatch):
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    key = tmp_path / "config" / "win2022-64.yaml"
    key.write_text(key.read_text() + "surprise: 1\n")
    monkeypatch.chdir(tmp_path)
    code = main(["config", "check", "--artifacts", "artifacts"])
    assert code == 2
    found = json.loads(Path("artifacts/github/customCheckRunAnnotations.json").read_text())
    assert [(a["path"], a["annotation_level"]) for a in found] == [
        ("config/win2022-64.yaml", "failure")]
    assert found[0]["start_line"] == len(key.read_text().splitlines())
    assert "surprise" in Path("artifacts/github/customCheckRunText.md").read_text()
    assert "surprise" in capsys.readouterr().err


def test_a_valid_config_writes_no_check_run_report(tmp_path, monkeypatch, capsys):
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "check", "--artifacts", "artifacts"]) == 0
    assert not (tmp_path / "artifacts").exists()


def test_hundreds_of_problems_give_githubs_fifty_annotations_and_a_bounded_text(tmp_path):
    error = ConfigError([Problem(f"config/k{i:04d}.yaml", i + 1, "x" * 300)
                         for i in range(2000)])
    assert len(annotations(error, tmp_path)) == MAX_ANNOTATIONS
    text = error_text(error)
    assert len(text) <= MAX_TEXT and "and 1950 more" in text
    assert text.startswith("### The config has 2000 problems")


def test_a_long_directive_report_is_cut_between_lines_within_the_budget():
    error = DirectiveError([DirectiveProblem(i, "include keys: " + "k" * 200, "unknown key")
                            for i in range(1, 1000)])
    text = error_text(error)
    assert len(text) <= MAX_TEXT and text.rstrip().splitlines()[-1].startswith("- ... and ")
    assert all(line.endswith("unknown key") for line in text.splitlines()
               if line.startswith("- line "))


def test_a_message_refused_as_a_whole_and_counted_problems_read_plainly():
    from cib_decision.directives import Vocabulary, parse_directives

    vocabulary = Vocabulary(keys=("win10-64",))
    for message, expected in [
            ("x\n" * 600_000, "- the message as a whole: 1200000 characters, more than the "),
            ("include keys: " + ", ".join(f"k{i}" for i in range(30)),
             "- ... and 10 more (`cib directives` lists them)")]:
        try:
            parse_directives(message, vocabulary)
        except DirectiveError as error:
            text = error_text(error)
        assert expected in text and "line 0" not in text, text[:500]


def test_other_errors_leave_no_report(tmp_path):
    assert write_error_report(CibError("no such revision"), tmp_path, tmp_path) == []
    assert list(tmp_path.iterdir()) == []

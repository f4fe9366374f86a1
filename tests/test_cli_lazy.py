"""`cib` imports only the module of the command it runs: `cib plan` pays for none of the
Taskcluster, cloud and local-deployment commands' imports, and every command still parses."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from cib_decision import cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_the_command_table_names_what_each_module_adds():
    for module, add, names in cli.COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        getattr(importlib.import_module(f"cib_decision.{module}"), add)(
            parser.add_subparsers())
        assert _commands(parser) == set(names), module


def test_the_full_parser_has_every_command_and_each_command_its_own():
    every = _commands(cli.build_parser())
    assert every == {n for *_, names in cli.COMMAND_MODULES for n in names}
    assert _commands(cli.build_parser("plan")) == {"changes", "plan"}
    assert _commands(cli.build_parser("dev-release")) == {"dev-release"}
    assert cli._command_of(["--help"]) is None and cli._command_of(["nonsense"]) is None


def test_the_console_script_and_python_m_run_the_same_entry_point():
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"cib": "cib_decision.cli:main"}
    ran = subprocess.run([sys.executable, "-m", "cib_decision", "--version"],
                         check=True, capture_output=True, text=True)
    assert ran.stdout.startswith("cib ")


def test_cib_plan_imports_no_other_command():
    code = ("import sys; from cib_decision import cli; cli.build_parser(cli._command_of("
            "['plan'])).parse_args(['plan', '--no-base']); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    for module in ("cib_decision.cli.decision", "cib_decision.devtc.harness",
                   "cib_decision.cli.gc", "cib_decision.cloudcreds", "taskcluster"):
        assert module not in loaded

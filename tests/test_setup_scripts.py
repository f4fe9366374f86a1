"""How environments get installed: `scripts/uv` gives the pinned uv (installed once, from the
package index), which `scripts/setup`, the task-env task and the adopters' setup line in the
README all use, at one version."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from cib_decision.taskgraph.transforms.task_env import BUILD

from .conftest import ROOT


def pinned_uv() -> str:
    (version,) = re.findall(r"^version=(\S+)", (ROOT / "scripts" / "uv").read_text(), re.M)
    return version


def test_the_adopters_setup_line_installs_the_uv_scripts_uv_pins():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("setup: '")]
    assert len(lines) == 1 and f" uv=={pinned_uv()} " in lines[0]


def test_the_task_env_build_installs_with_scripts_uv_and_falls_back_to_pip():
    assert "./scripts/uv python3" in BUILD and "python3 -m pip install" in BUILD


def test_scripts_uv_installs_the_pinned_uv_once_and_prints_where(tmp_path):
    environ = {**os.environ, "CIB_UV_DIR": str(tmp_path / "uv")}
    first = subprocess.run([ROOT / "scripts" / "uv"], env=environ, capture_output=True,
                           text=True, timeout=300)
    if first.returncode != 0 and "cannot install" in first.stderr:
        pytest.skip(f"no uv from the package index here: {first.stderr.strip()[-200:]}")
    assert first.returncode == 0, first.stderr
    uv = first.stdout.strip()
    assert uv == str(tmp_path / "uv" / "bin" / "uv")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[:2] == ["uv", pinned_uv()]
    # a second call finds it: no pip, nothing printed but the path
    again = subprocess.run([ROOT / "scripts" / "uv", "/nonexistent/python"], env=environ,
                           capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout.strip(), again.stderr) == (0, uv, "")


def test_scripts_uv_says_why_when_uv_cannot_be_installed(tmp_path):
    environ = {**os.environ, "CIB_UV_DIR": str(tmp_path / "uv")}
    done = subprocess.run([ROOT / "scripts" / "uv", "/nonexistent/python"], env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "cannot install uv==" in done.stderr
    assert not (tmp_path / "uv").exists()

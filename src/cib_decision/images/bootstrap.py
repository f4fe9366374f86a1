"""A target's `bootstrap.executions` as builder user data (pure).

Windows builders get a `<powershell>` script, Linux builders a `#cloud-config` document whose
`runcmd` runs a bash script. Each execution runs its commands in its shell; when it has a
`test.std.out.match`, the output must match (a regular expression), and `on.failure: retry|retest
after N seconds` runs it again after N seconds (at most `ATTEMPTS` times). When every execution
has passed, the script stops the machine: that stop is the builder's signal that the image is
ready to capture. An execution that keeps failing leaves the machine running, so the build
times out instead of capturing a broken image.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..config.model import os_family

ATTEMPTS = 20
_AGAIN = re.compile(r"\b(?:retry|retest)\s+after\s+(\d+)\s+seconds?\b", re.IGNORECASE)


def _commands(execution: dict[str, Any]) -> list[str]:
    commands = []
    for command in execution.get("commands") or ():
        if isinstance(command, str):
            commands.append(command)
        elif isinstance(command, dict) and command.get("tokens"):
            commands.append(str(command.get("format", "{0}")).format(*command["tokens"]))
    return commands


def _retry_seconds(execution: dict[str, Any]) -> int | None:
    match = _AGAIN.search(str((execution.get("on") or {}).get("failure", "")))
    return int(match.group(1)) if match else None


def _out_match(execution: dict[str, Any]) -> str | None:
    return (((execution.get("test") or {}).get("std") or {}).get("out") or {}).get("match")


def is_windows(image: dict[str, Any]) -> bool:
    """Whether the image's os is Windows (PowerShell user data): `config.model.os_family`."""
    return os_family(image) == "windows"


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def powershell(executions: list[dict[str, Any]]) -> str:
    """The `<powershell>` user data of a Windows builder."""
    lines = ["<powershell>", "$ErrorActionPreference = 'Continue'"]
    for execution in executions:
        name, wait = execution["name"], _retry_seconds(execution) or 0
        attempts = ATTEMPTS if wait else 1
        match = _out_match(execution)
        body = "; ".join(_commands(execution)) or "$null"
        check = f"($out -match {_ps_quote(match)})" if match else "$?"
        lines += [
            f"# execution {name}",
            f"$ok = $false; foreach ($attempt in 1..{attempts}) {{",
            f"  $out = & {{ {body} }} 2>&1 | Out-String; Write-Output $out",
            f"  if ({check}) {{ $ok = $true; break }}",
            f"  Write-Output ('cib: {name} failed (attempt {{0}})' -f $attempt)",
            f"  Start-Sleep -Seconds {wait}",
            "}",
            f"if (-not $ok) {{ Write-Output 'cib: {name} failed; not stopping'; exit 1 }}",
        ]
    lines += ["Stop-Computer -Force", "</powershell>", "<persist>false</persist>"]
    return "\n".join(lines) + "\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def bash_script(executions: list[dict[str, Any]]) -> str:
    """The bash script a Linux builder runs through cloud-init."""
    lines = ["#!/bin/bash", "set -u"]
    for execution in executions:
        name, wait = execution["name"], _retry_seconds(execution) or 0
        attempts = ATTEMPTS if wait else 1
        match = _out_match(execution)
        shell = execution.get("shell", "bash")
        body = "\n".join(_commands(execution)) or "true"
        check = (f"grep -Eq {_sh_quote(match)} <<< \"$out\"" if match else "[ $status -eq 0 ]")
        lines += [
            f"# execution {name}",
            "ok=0",
            f"for attempt in $(seq 1 {attempts}); do",
            f"  out=$({shell} -c {_sh_quote(body)} 2>&1); status=$?; echo \"$out\"",
            f"  if {check}; then ok=1; break; fi",
            f"  echo \"cib: {name} failed (attempt $attempt)\"; sleep {wait}",
            "done",
            f"[ $ok -eq 1 ] || {{ echo 'cib: {name} failed; not stopping'; exit 1; }}",
        ]
    lines.append("poweroff")
    return "\n".join(lines) + "\n"


def cloud_init(executions: list[dict[str, Any]]) -> str:
    """The `#cloud-config` user data of a Linux builder."""
    document = {
        "write_files": [{"path": "/var/lib/cib/bootstrap.sh", "permissions": "0755",
                         "content": bash_script(executions)}],
        "runcmd": [["/var/lib/cib/bootstrap.sh"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)


def user_data(image: dict[str, Any], target_raw: dict[str, Any]) -> str:
    """The user data of a builder for `target_raw` of an image with `image` settings."""
    executions = list((target_raw.get("bootstrap") or {}).get("executions") or ())
    return powershell(executions) if is_windows(image) else cloud_init(executions)

"""A target's `bootstrap.executions` as builder user data (pure).

Windows builders get a `<powershell>` script, Linux builders a `#cloud-config` document whose
`runcmd` runs a bash script. Each execution runs its commands in its shell; when it has a
`test.std.out.match`, the output must match (a regular expression), and `on.failure: retry|retest
after N seconds` runs it again after N seconds (at most `ATTEMPTS` times). When every execution
has passed, the script stops the machine: that stop is the builder's signal that the image is
ready to capture. Each line an execution prints is written as `<execution name>: <line>`, and
the script's own progress as `cib: ...` (`cib: <name> passed`, `cib: all <N> executions
passed`), to its output and the console (on Windows the serial port, COM1): the lines
validation rules match (images/validation.py). An execution that keeps failing leaves the
machine running, so the build times out instead of capturing a broken image.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..config.model import os_family

ATTEMPTS = 20
# what the script writes after an execution that stops the machine itself (`stop_state`)
_STOPPING = "cib: {name} ran; the machine is to stop ({state})"
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


def stop_state(execution: dict[str, Any]) -> str | None:
    """The machine state an execution ends in (`test.status.code.match`: `stopped`,
    `PowerState/stopped`, ...): it stops the machine itself, as a provisioner ending in
    sysprep or `poweroff` does. cloud-image-builder polled the VM's status for it; here it
    means the execution runs once (`retest` would re-check the state, which the builder's wait
    for the stop does) and the script ends with it, its exit status unchecked, whatever
    executions follow."""
    return (((execution.get("test") or {}).get("status") or {}).get("code") or {}).get("match")




def is_windows(image: dict[str, Any]) -> bool:
    """Whether the image's os is Windows (PowerShell user data): `config.model.os_family`."""
    return os_family(image) == "windows"


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Every line a script writes also goes to the serial console (COM1), which the cloud keeps as
# the instance's console output: what validation rules and test verdicts are read from.
_SERIAL = ["$cibSerial = $null",
           "try { $cibSerial = New-Object System.IO.Ports.SerialPort 'COM1', 115200; "
           "$cibSerial.Open() } catch { $cibSerial = $null }",
           "function Write-CibLine([string] $line) { Write-Output $line; if ($cibSerial) "
           "{ try { $cibSerial.WriteLine($line) } catch { } } }"]


def powershell(executions: list[dict[str, Any]]) -> str:
    """The `<powershell>` user data of a Windows builder."""
    lines = ["<powershell>", "$ErrorActionPreference = 'Continue'", *_SERIAL]
    for execution in executions:
        name, wait = execution["name"], _retry_seconds(execution) or 0
        attempts = ATTEMPTS if wait else 1
        match = _out_match(execution)
        body = "; ".join(_commands(execution)) or "$null"
        state = stop_state(execution)
        if state:
            lines += [
                f"# execution {name} (stops the machine: {state})",
                f"$out = & {{ {body} }} 2>&1 | Out-String",
                f"foreach ($text in ($out -split \"`r?`n\")) {{ if ($text) {{ "
                f"Write-CibLine ({_ps_quote(name + ': ')} + $text) }} }}",
                f"Write-CibLine {_ps_quote(_STOPPING.format(name=name, state=state))}",
                "exit 0", "</powershell>", "<persist>false</persist>"]
            return "\n".join(lines) + "\n"
        check = f"($out -match {_ps_quote(match)})" if match else "$status"
        lines += [
            f"# execution {name}",
            f"$ok = $false; foreach ($attempt in 1..{attempts}) {{",
            f"  $out = & {{ {body} }} 2>&1 | Out-String; $status = $?",
            f"  foreach ($text in ($out -split \"`r?`n\")) {{ if ($text) {{ "
            f"Write-CibLine ({_ps_quote(name + ': ')} + $text) }} }}",
            f"  if ({check}) {{ $ok = $true; break }}",
            f"  Write-CibLine ({_ps_quote(f'cib: {name} failed (attempt {{0}})')} -f $attempt)",
            f"  Start-Sleep -Seconds {wait}",
            "}",
            f"if (-not $ok) {{ Write-CibLine {_ps_quote(f'cib: {name} failed; not stopping')}; "
            "exit 1 }",
            f"Write-CibLine {_ps_quote(f'cib: {name} passed')}",
        ]
    lines += [f"Write-CibLine 'cib: all {len(executions)} executions passed'",
              "Stop-Computer -Force", "</powershell>", "<persist>false</persist>"]
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
        state = stop_state(execution)
        if state:
            lines += [
                f"# execution {name} (stops the machine: {state})",
                f"out=$({shell} -c {_sh_quote(body)} 2>&1)",
                f"while IFS= read -r line; do [ -n \"$line\" ] && printf '%s%s\\n' "
                f"{_sh_quote(name + ': ')} \"$line\"; done <<< \"$out\"",
                f"echo {_sh_quote(_STOPPING.format(name=name, state=state))}", "exit 0"]
            return "\n".join(lines) + "\n"
        check = (f"grep -Eq {_sh_quote(match)} <<< \"$out\"" if match else "[ $status -eq 0 ]")
        lines += [
            f"# execution {name}",
            "ok=0",
            f"for attempt in $(seq 1 {attempts}); do",
            f"  out=$({shell} -c {_sh_quote(body)} 2>&1); status=$?",
            f"  while IFS= read -r line; do [ -n \"$line\" ] && printf '%s%s\\n' "
            f"{_sh_quote(name + ': ')} \"$line\"; done <<< \"$out\"",
            f"  if {check}; then ok=1; break; fi",
            f"  echo {_sh_quote(f'cib: {name} failed (attempt ')}\"$attempt)\"; sleep {wait}",
            "done",
            f"[ $ok -eq 1 ] || {{ echo {_sh_quote(f'cib: {name} failed; not stopping')}; "
            "exit 1; }",
            f"echo {_sh_quote(f'cib: {name} passed')}",
        ]
    lines += [f"echo 'cib: all {len(executions)} executions passed'", "poweroff"]
    return "\n".join(lines) + "\n"


def cloud_init(executions: list[dict[str, Any]]) -> str:
    """The `#cloud-config` user data of a Linux builder."""
    document = {
        "write_files": [{"path": "/var/lib/cib/bootstrap.sh", "permissions": "0755",
                         "content": bash_script(executions)}],
        "runcmd": [["/var/lib/cib/bootstrap.sh"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)


def user_data(image: dict[str, Any], executions: list[dict[str, Any]]) -> str:
    """The user data of a builder running `executions` (`Target.bootstrap_executions`) of an
    image with `image` settings."""
    return powershell(executions) if is_windows(image) else cloud_init(executions)


# --- smoke tests of a captured image -----------------------------------------------------------

TEST_VERDICT = "cib-test"  # the program of the verdict lines `smoke_test_script` writes


def smoke_test_script(tests: list[dict[str, Any]], family: str, *, power_off: bool) -> str:
    """The script that runs an image's smoke tests (`ImageTest.to_json()` items) on an instance
    booted from it: each test's output as `<test name>: <line>` and its verdict as
    `cib-test: <name> passed (exit N)` or `... failed (exit N)` (images/validation.py
    `smoke_test_results` reads them), every line also on the console. All tests run whatever the
    others did. With `power_off` the instance stops at the end (AWS: the signal that the
    tests are done, as the bootstrap's stop is the builder's); a run command needs none."""
    if family == "windows":
        lines = ["$ErrorActionPreference = 'Continue'", *_SERIAL]
        for test in tests:
            name, match = test["name"], test.get("match")
            body = "; ".join(test["commands"])
            check = f" -and ($out -match {_ps_quote(match)})" if match else ""
            lines += [
                f"# test {name}",
                # a child PowerShell: `exit N` in a test ends the test, not the script
                f"$out = & powershell.exe -NoProfile -NonInteractive -Command {{ {body} }} "
                "2>&1 | Out-String; $code = $LASTEXITCODE",
                f"foreach ($text in ($out -split \"`r?`n\")) {{ if ($text) {{ "
                f"Write-CibLine ({_ps_quote(name + ': ')} + $text) }} }}",
                f"$verdict = if (($code -eq 0){check}) {{ 'passed' }} else {{ 'failed' }}",
                f"Write-CibLine ({_ps_quote(f'{TEST_VERDICT}: {name} ')} + $verdict + "
                "' (exit ' + $code + ')')",
            ]
        if power_off:
            lines.append("Stop-Computer -Force")
        script = "\n".join(lines) + "\n"
        return f"<powershell>\n{script}</powershell>\n<persist>false</persist>\n" \
            if power_off else script
    lines = ["#!/bin/bash", "set -u"]
    for test in tests:
        name, match = test["name"], test.get("match")
        check = f" && grep -Eq {_sh_quote(match)} <<< \"$out\"" if match else ""
        lines += [
            f"# test {name}",
            f"out=$(bash -c {_sh_quote(chr(10).join(test['commands']))} 2>&1); code=$?",
            f"while IFS= read -r line; do [ -n \"$line\" ] && printf '%s%s\\n' "
            f"{_sh_quote(name + ': ')} \"$line\"; done <<< \"$out\"",
            f"if [ $code -eq 0 ]{check}; then verdict=passed; else verdict=failed; fi",
            f"echo {_sh_quote(f'{TEST_VERDICT}: {name} ')}\"$verdict (exit $code)\"",
        ]
    if power_off:
        lines.append("poweroff")
    script = "\n".join(lines) + "\n"
    if not power_off:
        return script
    document = {"write_files": [{"path": "/var/lib/cib/tests.sh", "permissions": "0755",
                                 "content": script}],
                "runcmd": [["/var/lib/cib/tests.sh"]]}
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)

"""What the local clouds print for a builder's bootstrap or an image's smoke tests, which they
do not run (`devclouds.aws`: an instance's console output; `devclouds.azure_fake`: a run
command's output).

The scripts are cib's own (images/bootstrap.py), so their framing is known: each execution is
marked `# execution <name>` and each test `# test <name>`. The transcript has the lines the
real script writes when every execution passes and each test passes, unless it is named in
`failing` (what a test's `failing_tests` set sets): `<name>: ...` output, `cib: <name> passed`,
`cib: all <N> executions passed` (or, after an execution that stops the machine itself,
`cib: <name> ran; the machine is to stop (...)` and nothing more), `cib-test: <name> passed
(exit 0)`, or `failed (exit 1)`.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import yaml

from ..images.bootstrap import TEST_VERDICT

_EXECUTION = re.compile(r"^# execution (.+?)(?: \(stops the machine: (.+)\))?$", re.MULTILINE)
_TEST = re.compile(r"^# test (.+)$", re.MULTILINE)
STAND_IN = "(the local cloud runs no commands)"


def script_of(user_data: str) -> str:
    """The script in a builder's user data: a `#cloud-config` document's files, else the
    user data itself (PowerShell, or a script given to a run command)."""
    if user_data.startswith("#cloud-config"):
        document = yaml.safe_load(user_data) or {}
        return "\n".join(str(f.get("content", "")) for f in document.get("write_files") or ())
    return user_data


def transcript(user_data: str, failing: Collection[str] = ()) -> str:
    """The output of cib's script in `user_data` as the local cloud plays it."""
    script = script_of(user_data)
    lines: list[str] = []
    executions = _EXECUTION.findall(script)
    for name, state in executions:
        lines.append(f"{name}: {STAND_IN}")
        if state:  # it stops the machine: the script ends with it
            lines.append(f"cib: {name} ran; the machine is to stop ({state})")
            break
        lines.append(f"cib: {name} passed")
    else:
        if "executions passed" in script:
            lines.append(f"cib: all {len(executions)} executions passed")
    for name in _TEST.findall(script):
        verdict = "failed (exit 1)" if name in failing else "passed (exit 0)"
        lines += [f"{name}: {STAND_IN}", f"{TEST_VERDICT}: {name} {verdict}"]
    return "".join(f"{line}\n" for line in lines)

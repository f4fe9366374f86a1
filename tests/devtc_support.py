"""`cib dev-taskcluster` in a subprocess, for the local Taskcluster's tests (test helper)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator


def ctrl_c_reaches_it() -> None:
    """In a child before it runs (`preexec_fn`): Ctrl-C (SIGINT) handled as by default. A
    shell runs background jobs with SIGINT ignored, and Python then never turns it into
    KeyboardInterrupt: a suite started in the background (`.ci/run &`) must still be able to
    interrupt the processes it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def dev_taskcluster_process(*args: str) -> Iterator[tuple[str, list[str]]]:
    """`cib dev-taskcluster --access-token sekrit --quiet ARGS` in a subprocess: its root URL
    and the lines it printed up to "Ctrl-C"; stopped with Ctrl-C afterwards, which must end it
    with status 0 and no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cib_decision", "dev-taskcluster", "--access-token", "sekrit",
         "--quiet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_reaches_it)
    try:
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line)
        yield lines[0].strip().removeprefix("TASKCLUSTER_ROOT_URL="), lines
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    assert "Traceback" not in process.stderr.read()

"""`scripts/hostile` runs and holds its rules on a small sample (the full run is 10,000
messages and 100 config trees; README, Security)."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_a_sample_of_hostile_input_ends_in_results_and_clean_errors_only():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "hostile"), "--messages",
                           "300", "--trees", "25", "--seed", "7"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = {name: int(re.search(rf"^  {name} +(\d+)", done.stdout, re.MULTILINE)[1])
              for name in ("results", "clean errors", "tracebacks", "crashes")}
    assert counts["tracebacks"] == counts["crashes"] == 0
    assert counts["results"] + counts["clean errors"] == 325

"""scripts/bench's goal lines: each ratio from the medians of its runs, against its goal."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench"


def _bench():
    loader = importlib.machinery.SourceFileLoader("bench_script", str(BENCH))
    spec = importlib.util.spec_from_loader("bench_script", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _runs(cpu: float, mb: float = 100.0) -> list[dict]:
    return [{"cpu": cpu + d, "peak_mb": mb} for d in (-0.1, 0.0, 0.1)]


def test_plan_goals_are_the_medians_over_the_replay():
    bench = _bench()
    measured = {
        100: {"plans": _runs(0.6), "warms": _runs(0.5), "replays": _runs(0.5)},
        1000: {"plans": _runs(2.6), "warms": _runs(2.1), "replays": _runs(2.0, 95.0)},
    }
    goals = {what.split(", ")[-1] if "linear" not in what else "linear": (value, holds)
             for what, value, _, holds in bench.plan_goals(measured)}
    assert goals["warm CPU / replay CPU"] == (2.1 / 2.0, True)
    assert goals["cold CPU / replay CPU"] == (2.6 / 2.0, True)
    assert goals["peak memory / replay's"][1] is True  # 100 / 95
    growth, holds = goals["linear"]
    assert abs(growth - (2.6 / 2.0) / (0.6 / 0.5)) < 1e-9 and holds


def test_a_goal_missed_says_so(capsys):
    bench = _bench()
    bench.print_goals([("2. one-key push", 0.85, "<= 0.8", False),
                       ("4. tasks/s", 643.0, ">= 500", True)])
    out = capsys.readouterr().out.splitlines()
    assert out[1].endswith("MISSES") and "0.85" in out[1]
    assert out[2].endswith("HOLDS") and "643.00" in out[2]

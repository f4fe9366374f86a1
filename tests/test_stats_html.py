"""The `cib stats` HTML report in a real headless browser (Debian's chromium): the screenshot
shows the charts drawn, each series in its chart's part of the page, not an empty page. The
report is made from a generated history of 200 decisions (no Taskcluster needed: test_stats.py
reads one through the APIs)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cib_decision import stats, stats_html
from cib_decision.devtc.history import generate

from .conftest import ROOT
from .plan_support import plan_json

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--force-color-profile=srgb", "--window-size=1200,1600")
WIDTH = 1200


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    return found


@pytest.fixture(scope="module")
def report():
    """The report of 200 generated decisions, each build parsed from its definition and
    status as `listTaskGroup` gives them."""
    templates = [t["task"] for t in plan_json(ROOT, "--no-base")["tasks"].values()]
    history = generate(templates, 200, datetime(2026, 11, 30, tzinfo=UTC), seed_value=3)
    decisions, builds = [], []
    for task in history:
        if task.definition["tags"]["kind"] == "decision-task":
            decisions.append(stats.Decision(task.task_id,
                                            stats.parse_time(task.definition["created"])))
            continue
        build = stats.build_of({"task": task.definition,
                                "status": {"taskId": task.task_id, "runs": task.runs}},
                               task.definition["taskGroupId"], "production")
        copies = stats.copy_seconds_of(task.artifacts.get("public/machine-image.json"))
        builds.append(stats.Build(**{**build.__dict__, "copy_seconds": copies}))
    return stats.report("production", "images", sorted(decisions, key=lambda d: d.created),
                        builds)


def screenshot(page: Path, tmp_path: Path):
    from PIL import Image

    png = tmp_path / "report.png"
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}",
                             f"--screenshot={png}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert png.exists(), result.stderr[-2000:]
    return Image.open(png).convert("RGB")


def pixels_of(image, colour: str, tolerance: int = 6) -> list[tuple[int, int]]:
    """Where the screenshot has `colour` (`#rrggbb`), give or take `tolerance` a channel."""
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    width, height = image.size
    data = image.load()
    return [(x, y) for y in range(0, height, 2) for x in range(0, width, 2)
            if all(abs(a - b) <= tolerance for a, b in zip(data[x, y], want, strict=True))]


def centre(points):
    return (sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points))


def test_the_report_draws_its_charts_in_a_browser(report, tmp_path):
    page = tmp_path / "stats.html"
    page.write_text(stats_html.html(report))
    image = screenshot(page, tmp_path)
    image.save(tmp_path / "seen.png")

    # a 12-pixel legend square is 36 sampled pixels; a line or a bar is far more
    enough = 150
    keys = stats_html.key_colours(report)
    assert len(keys) == 5
    durations = {}
    for key, colour in keys.items():
        found = pixels_of(image, colour)
        assert len(found) > enough, f"the line of {key} ({colour}) is not drawn"
        durations[key] = centre(found)
    failures = pixels_of(image, stats_html.FAILURE_COLOUR)
    waits = [pixels_of(image, c) for c in (stats_html.WAIT_MEDIAN_COLOUR,
                                          stats_html.WAIT_P90_COLOUR)]
    assert len(failures) > 10 * enough, "the failure bars are not drawn"
    assert all(len(w) > enough for w in waits), "the queue wait lines are not drawn"

    # each in its own chart: durations across the top, failures left below, waits right
    top = max(y for _, y in durations.values())
    fail_x, fail_y = centre(failures)
    assert fail_x < WIDTH / 2 and fail_y > top
    for wait in waits:
        wait_x, wait_y = centre(wait)
        assert wait_x > WIDTH / 2 and wait_y > top


def test_the_page_needs_nothing_from_elsewhere(report):
    page = stats_html.html(report)
    for outside in ("<script", "http://", "https://", "@import", "url("):
        assert outside not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 3


def test_an_empty_history_says_so_instead_of_drawing(tmp_path):
    empty = stats.report("production", "images", [], [])
    page = stats_html.html(empty)
    assert page.count("no builds in this window") == 2
    assert "no machine-image builds in this window" in page

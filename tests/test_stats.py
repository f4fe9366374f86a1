"""`cib stats` on a generated history of 240 push decisions in the local Taskcluster: every
figure is checked against the history it was read from, computed here on its own (the
statistics module's quantiles, plain counting), and the reading goes through the genuine
index and queue APIs with anonymous credentials."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from cib_decision import stats
from cib_decision.cli import main
from cib_decision.devtc.history import SeededTask, generate, seed

from .conftest import CONFIG_DIR, ROOT
from .plan_support import plan_json

END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DECISIONS = 240
LAST = 200


@pytest.fixture(scope="module")
def templates():
    """The build task definitions of the bundled fleet, as the decision makes them."""
    plan = plan_json(ROOT, "--no-base")
    return [t["task"] for t in plan["tasks"].values()]


@pytest.fixture(scope="module")
def history(templates):
    return generate(templates, DECISIONS, END, project="images", seed_value=7)


def anonymous(monkeypatch, dev):
    for name in ("TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN",
                 "CIB_ENVIRONMENT", "CIB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", dev.root_url)


@pytest.fixture
def seeded(dev_taskcluster, history, monkeypatch):
    """The history in the local Taskcluster; `cib stats` reads it anonymously."""
    seed(dev_taskcluster, history)
    anonymous(monkeypatch, dev_taskcluster)
    return history


@pytest.fixture(scope="module")
def last_200(_dev_taskcluster_server, history):
    """`cib stats --last 200 --format json` of the history (read once for the module)."""
    _dev_taskcluster_server.reset()
    seed(_dev_taskcluster_server, history)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(io.StringIO()):
        anonymous(monkeypatch, _dev_taskcluster_server)
        code = main(["stats", "--config-dir", str(CONFIG_DIR), "--project", "images",
                     "--last", str(LAST), "--format", "json"])
    assert code == 0
    return json.loads(out.getvalue())


def run_stats(capsys, *args):
    code = main(["stats", "--config-dir", str(CONFIG_DIR), "--project", "images", *args])
    out, err = capsys.readouterr()
    return code, out, err


def stats_json(capsys, *args):
    code, out, err = run_stats(capsys, "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


# --- the figures, computed here from the generated history --------------------------------


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_decision(task):
    return task.definition["tags"]["kind"] == "decision-task"


def decisions_of(history):
    return sorted((t for t in history if is_decision(t)),
                  key=lambda t: parse(t.definition["created"]))


def builds_of(history, decision_ids):
    """(key, target, task) of every build task of the decisions, from the command's text."""
    found = []
    for task in history:
        if task.definition["taskGroupId"] not in decision_ids or is_decision(task):
            continue
        script = task.definition["payload"]["command"][-1][-1]
        key = re.search(r"--key (\S+)", script).group(1)
        target = re.search(r"--target (\S+)", script)
        found.append((key, target.group(1) if target else "disk", task))
    return found


def seconds(run, start, end):
    return (parse(run[end]) - parse(run[start])).total_seconds()


def p90(values):
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 \
        else values[0]


def started(task):
    return any("started" in r for r in task.runs)


def expected_figures(tasks):
    durations = [seconds(r, "started", "resolved") for t in tasks for r in t.runs
                 if r["state"] == "completed"]
    waits = [seconds(r, "scheduled", "started") for t in tasks for r in t.runs
             if "started" in r]
    ran = [t for t in tasks if started(t)]
    failed = [t for t in ran if t.runs[-1]["state"] in ("failed", "exception")]
    retried = [t for t in ran if len(t.runs) > 1]
    return {"builds": len(tasks), "durations": durations, "waits": waits,
            "failure_rate": len(failed) / len(ran) if ran else None,
            "retry_rate": len(retried) / len(ran) if ran else None}


def assert_spread(found, values):
    assert found["count"] == len(values)
    assert found["median"] == pytest.approx(statistics.median(values), abs=0.001)
    assert found["p90"] == pytest.approx(p90(values), abs=0.001)


# --- end to end ---------------------------------------------------------------------------


def test_the_last_200_decisions_give_each_targets_durations_waits_and_rates(history, last_200):
    newest = decisions_of(history)[-LAST:]
    builds = builds_of(history, {t.task_id for t in newest})
    report = last_200

    assert report["decisions"]["count"] == LAST
    assert report["decisions"]["first"].startswith(newest[0].definition["created"][:19])
    assert report["environment"] == "production"
    by_target = {(row["key"], row["target"]): row for row in report["targets"]}
    expected_keys = {(key, target) for key, target, _ in builds}
    assert set(by_target) == expected_keys
    assert sum(row["builds"] for row in report["targets"]) == len(builds) > 400
    for (key, target), row in by_target.items():
        tasks = [t for k, g, t in builds if (k, g) == (key, target)]
        want = expected_figures(tasks)
        assert row["builds"] == want["builds"]
        assert_spread(row["duration"], want["durations"])
        assert_spread(row["queue_wait"], want["waits"])
        assert row["failure_rate"] == pytest.approx(want["failure_rate"], abs=1e-4)
        assert row["retry_rate"] == pytest.approx(want["retry_rate"], abs=1e-4)


def test_region_copy_times_come_from_the_machine_image_records(history, last_200):
    newest = {t.task_id for t in decisions_of(history)[-LAST:]}
    report = last_200
    copies: dict[tuple[str, str, str], list[float]] = {}
    for key, target, task in builds_of(history, newest):
        record = task.artifacts.get("public/machine-image.json") or {}
        for region, took in record.get("copy_seconds", {}).items():
            copies.setdefault((key, target, region), []).append(took)
    assert copies, "the generated history has copies"
    found = {(row["key"], row["target"], region): spread
             for row in report["targets"] for region, spread in row["copies"].items()}
    assert set(found) == set(copies)
    for where, values in copies.items():
        assert_spread(found[where], values)


def test_failures_per_region_count_machine_images_that_ran(history, last_200):
    newest = {t.task_id for t in decisions_of(history)[-LAST:]}
    report = last_200
    per_region: dict[str, list[SeededTask]] = {}
    for _, target, task in builds_of(history, newest):
        if target != "disk":
            per_region.setdefault(target, []).append(task)
    assert {r["region"] for r in report["regions"]} == set(per_region)
    for row in report["regions"]:
        ran = [t for t in per_region[row["region"]] if started(t)]
        failed = [t for t in ran if t.runs[-1]["state"] != "completed"]
        assert (row["builds"], row["counted"], row["failed"]) == (
            len(per_region[row["region"]]), len(ran), len(failed))
    worst = max(report["regions"], key=lambda r: r["failure_rate"])
    assert worst["region"] == "azure/westus2"  # the generator's failing region


def test_a_build_that_never_started_is_not_a_failure(seeded, capsys):
    never = [t for t in seeded if t.runs and not started(t)]
    assert never, "the generated history has builds behind a failed disk image"
    report = stats_json(capsys, "--last", str(DECISIONS))
    assert report["overall"]["builds"] - report["overall"]["counted"] == len(never)


def test_weekly_trends_follow_the_history(history, last_200):
    newest = decisions_of(history)[-LAST:]
    report = last_200
    weeks: dict[str, list[str]] = {}
    for decision in newest:
        year, week, _ = parse(decision.definition["created"]).isocalendar()
        weeks.setdefault(f"{year}-W{week:02d}", []).append(decision.task_id)
    assert [p["period"] for p in report["trends"]["all"]] == sorted(weeks)
    builds = builds_of(history, {t.task_id for t in newest})
    for point in report["trends"]["all"]:
        tasks = [t for _, _, t in builds if t.definition["taskGroupId"] in
                 set(weeks[point["period"]])]
        want = expected_figures(tasks)
        assert point["builds"] == want["builds"]
        assert_spread(point["queue_wait"], want["waits"])
    for point in report["trends"]["keys"]:  # a key's line: its machine images
        tasks = [t for k, g, t in builds if k == point["key"] and g != "disk"
                 and t.definition["taskGroupId"] in set(weeks[point["period"]])]
        assert_spread(point["duration"], expected_figures(tasks)["durations"])
    # the generator makes builds slower week by week (6%): each key's line shows it
    weekly = sorted(weeks)
    growth = []
    for key in {p["key"] for p in report["trends"]["keys"]}:
        medians = {p["period"]: p["duration"]["median"] for p in report["trends"]["keys"]
                   if p["key"] == key}
        early = [medians[w] for w in weekly[:4] if w in medians]
        late = [medians[w] for w in weekly[-4:] if w in medians]
        growth.append(statistics.mean(late) / statistics.mean(early))
    assert statistics.median(growth) > 1.1


def test_every_n_decisions_is_a_period(seeded, capsys):
    report = stats_json(capsys, "--last", str(LAST), "--per", "30")
    assert len(report["trends"]["all"]) == math.ceil(LAST / 30)
    assert report["per"] == 30


def test_a_date_range_chooses_the_decisions_created_in_it(seeded, capsys):
    since, until = END - timedelta(days=30), END - timedelta(days=10)
    report = stats_json(capsys, "--since", f"{since:%Y-%m-%d}", "--until", f"{until:%Y-%m-%d}")
    day_after = (until + timedelta(days=1)).date()
    inside = [t for t in decisions_of(seeded)
              if since.date() <= parse(t.definition["created"]).date() < day_after]
    assert report["decisions"]["count"] == len(inside) > 50


def test_the_table_shows_every_key_and_target(seeded, capsys):
    code, out, err = run_stats(capsys, "--last", str(LAST))
    assert code == 0, err
    assert out.startswith(f"production (images): {LAST} decisions")
    for line in ("win10-64      disk", "azure/westus2", "eu-central-1", "2026-W48"):
        assert line in out
    assert "reading 200 of 240 decisions" in err


def test_artifacts_and_output_write_the_report_files(seeded, capsys, tmp_path):
    code, _, err = run_stats(capsys, "--last", "20", "--format", "html", "--output",
                             str(tmp_path / "report.html"), "--artifacts",
                             str(tmp_path / "public"))
    assert code == 0, err
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert json.loads((tmp_path / "public" / "stats.json").read_text())["decisions"][
        "count"] == 20
    assert "<svg" in (tmp_path / "public" / "stats.html").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (("--last", "5", "--since", "2026-01-01"), "give --last N or --since/--until, not both"),
    (("--since", "last tuesday"), "--since 'last tuesday': not a date"),
    (("--since", "2026-05-01", "--until", "2026-04-01"), "is not before --until"),
    (("--per", "fortnight"), "--per 'fortnight': give `week` or a number"),
    (("--last", "0"), "--last 0: give a number of decisions above 0"),
    (("--environment", "moon"), "no environment 'moon'"),
])
def test_bad_options_are_one_line_and_exit_2(seeded, capsys, args, message):
    code, out, err = run_stats(capsys, *args)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_unknown_project_has_no_decisions(seeded, capsys):
    code, out, err = run_stats(capsys, "--project", "elsewhere", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["decisions"]["count"] == 0


# --- pure pieces --------------------------------------------------------------------------


def test_quantile_interpolates_between_the_closest_ranks():
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    assert stats.quantile(values, 0.5) == statistics.median(values)
    assert stats.quantile(values, 0.9) == pytest.approx(p90(values))
    assert stats.quantile([4.0], 0.9) == 4.0


def test_key_and_target_come_from_the_build_command(templates):
    found = {stats.key_and_target(t) for t in templates} - {None}
    assert ("machine-image", "win10-64", "azure/centralus") in found
    assert ("disk-image", "win10-64", "disk") in found
    kinds = {t["tags"]["kind"] for t in templates if stats.key_and_target(t)}
    assert kinds == {"disk-image", "machine-image"}


def test_builds_for_another_environment_are_left_out(templates):
    member = {"task": next(t for t in templates if t["tags"]["kind"] == "machine-image"),
              "status": {"taskId": "x", "runs": []}}
    assert stats.build_of(member, "d", "production") is not None
    assert stats.build_of(member, "d", "staging") is None


def test_a_retried_build_counts_once_with_both_runs_waiting():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    runs = (stats.Run("exception", "scheduled", "worker-shutdown", start,
                      start + timedelta(minutes=2), start + timedelta(minutes=5)),
            stats.Run("completed", "retry", "completed", start + timedelta(minutes=5),
                      start + timedelta(minutes=6), start + timedelta(minutes=46)))
    figures = stats.figures([stats.Build("t", "d", "machine-image", "k", "aws/x", runs)])
    assert (figures.builds, figures.runs, figures.retry_rate, figures.failure_rate) == (
        1, 2, 1.0, 0.0)
    assert figures.duration == stats.Spread(1, 2400.0, 2400.0)
    assert figures.queue_wait.count == 2 and figures.queue_wait.median == 90.0


def test_a_machine_image_record_keeps_the_copy_times_of_its_copies():
    from cib_decision import manifest
    from cib_decision.errors import CibError

    record = manifest.parse_machine_image({
        "format": 1, "key": "k", "target": "amazon/us-east-1", "platform": "amazon",
        "region": "us-east-1", "image_id": "ami-0123456789abcdef0",
        "image_name": f"k-{'a' * 12}", "machine_digest": "a" * 64, "disk_digest": "b" * 64,
        "config_commit": "c" * 40, "build_task_id": "fkGXh3YVSdCkZDrb9JPhqQ",
        "created": "2026-11-30T12:00:00.000Z"})
    copied = manifest.with_copies(record, {"eu-west-1": "ami-0fedcba9876543210"},
                                  {"eu-west-1": 754.26})
    assert copied.to_json()["copy_seconds"] == {"eu-west-1": 754.3}
    assert stats.copy_seconds_of(copied.to_json()) == (("eu-west-1", 754.3),)
    assert manifest.parse_machine_image(copied.to_json()) == copied
    with pytest.raises(CibError, match="'us-west-2' is not a region of its copies"):
        manifest.parse_machine_image({**copied.to_json(), "copy_seconds": {"us-west-2": 1}})

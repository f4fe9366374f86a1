"""Build statistics of an environment's decisions (pure; `cli/stats.py` reads them).

From the disk-image and machine-image tasks of a set of decision task groups: per key and
target the build durations (median and 90th percentile of completed runs, started to
resolved), the queue wait (scheduled to started, every run that started), the failure rate
(builds whose last run failed or was an exception, of the builds that ran and are resolved),
the retry rate (builds that needed a new run: `retry`, `task-retry`, `rerun`), the time of
each region copy (`copy_seconds` of `public/machine-image.json`), failures per region, and
each of them per period (a week, or every N decisions) to show how they move. docs/stats.md
says where each figure comes from.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import CibError

BUILD_KINDS = ("disk-image", "machine-image")
DISK_TARGET = "disk"  # the target column of a disk image
FAILED = ("failed", "exception")
RESOLVED = ("completed", *FAILED)
RETRY_REASONS = ("retry", "task-retry", "rerun")
WEEK = "week"


class StatsError(CibError):
    """Stats options or history that cannot be used; the message says which."""


# --- what one build was ----------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """A Taskcluster date-time (`2026-12-06T14:55:06.123Z`) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in seconds, or None when either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


@dataclass(frozen=True)
class Run:
    """One run of a task, from its status."""

    state: str
    reason_created: str
    reason_resolved: str = ""
    scheduled: datetime | None = None
    started: datetime | None = None
    resolved: datetime | None = None

    @classmethod
    def from_status(cls, run: dict[str, Any]) -> Run:
        """A run of a `queue.status` / `listTaskGroup` answer."""
        return cls(run.get("state", ""), run.get("reasonCreated", ""),
                   run.get("reasonResolved", ""), parse_time(run.get("scheduled")),
                   parse_time(run.get("started")), parse_time(run.get("resolved")))

    @property
    def duration(self) -> float | None:
        """Seconds from start to completion; None unless the run completed."""
        return seconds_between(self.started, self.resolved) if self.state == "completed" \
            else None

    @property
    def wait(self) -> float | None:
        """Seconds the run waited in the queue (scheduled to started); None if it never
        started."""
        return seconds_between(self.scheduled, self.started)


@dataclass(frozen=True)
class Decision:
    """A decision task: its id and when it was created."""

    task_id: str
    created: datetime


@dataclass(frozen=True)
class Build:
    """One disk-image or machine-image task of a decision's graph."""

    task_id: str
    decision_id: str
    kind: str
    key: str
    target: str  # `<platform>/<region>` of a machine image, DISK_TARGET for a disk image
    runs: tuple[Run, ...]
    copy_seconds: tuple[tuple[str, float], ...] = ()

    @property
    def state(self) -> str:
        """The state of the latest run (`unscheduled` without runs)."""
        return self.runs[-1].state if self.runs else "unscheduled"

    @property
    def ran(self) -> bool:
        """Whether a worker started any of its runs (a task that never started, such as one
        behind a failed disk image, says nothing about its own build)."""
        return any(r.started is not None for r in self.runs)

    @property
    def counted(self) -> bool:
        """Whether it counts towards failure and retry rates: it ran and is resolved."""
        return self.ran and self.state in RESOLVED

    @property
    def failed(self) -> bool:
        """Whether its final run failed or was an exception."""
        return self.state in FAILED

    @property
    def retried(self) -> bool:
        """Whether a run had to be made again (the worker's or the task's retry, a rerun)."""
        return any(r.reason_created in RETRY_REASONS for r in self.runs)

    @property
    def region(self) -> str:
        """`<platform>/<region>` of a machine image; DISK_TARGET for a disk image."""
        return self.target


def key_and_target(task: dict[str, Any]) -> tuple[str, str, str] | None:
    """`(kind, key, target)` of a build task's definition, from the `cib image disk|machine
    --key K [--target T]` command its payload runs (transforms/common.py `run_cib`); None for
    any other task."""
    if (task.get("tags") or {}).get("kind") not in BUILD_KINDS:
        return None
    commands = (task.get("payload") or {}).get("command") or []
    for command in reversed(commands):
        script = command[-1] if isinstance(command, list) and command else command
        if not isinstance(script, str):
            continue
        try:
            words = shlex.split(script)
        except ValueError:
            continue
        for at in range(len(words) - 1):
            if words[at] == "image" and words[at + 1] in ("disk", "machine"):
                options = _options(words[at + 2:])
                if "--key" not in options:
                    continue
                kind = f"{words[at + 1]}-image"
                return kind, options["--key"], options.get("--target", DISK_TARGET)
    return None


def _options(words: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for at, word in enumerate(words):
        if word in ("--key", "--target") and at + 1 < len(words):
            found[word] = words[at + 1]
    return found


def build_of(member: dict[str, Any], decision_id: str, environment: str | None = None
             ) -> Build | None:
    """A Build from one `listTaskGroup` member (`{task, status}`); None for tasks that are not
    builds, or builds for another environment than `environment` (their `CIB_ENVIRONMENT`)."""
    task, status = member.get("task") or {}, member.get("status") or {}
    found = key_and_target(task)
    if found is None:
        return None
    env = ((task.get("payload") or {}).get("env") or {}).get("CIB_ENVIRONMENT")
    if environment and env and env != environment:
        return None
    kind, key, target = found
    runs = tuple(Run.from_status(r) for r in status.get("runs") or ())
    return Build(status.get("taskId", ""), decision_id, kind, key, target, runs)


def copy_seconds_of(record: Any) -> tuple[tuple[str, float], ...]:
    """`copy_seconds` of a machine-image record (`{region: seconds}`), sorted by region; empty
    when the record has none (reused copies, records written before builders timed copies)."""
    copies = record.get("copy_seconds") if isinstance(record, dict) else None
    if not isinstance(copies, dict):
        return ()
    return tuple(sorted((str(region), float(seconds)) for region, seconds in copies.items()
                        if isinstance(seconds, int | float) and not isinstance(seconds, bool)))


# --- choosing decisions ----------------------------------------------------------------------


def parse_day(text: str, option: str, end: bool = False) -> datetime:
    """A `--since`/`--until` value: `YYYY-MM-DD` (UTC; with `end`, the end of that day) or an
    ISO date-time; StatsError naming the option otherwise."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StatsError(f"{option} {text!r}: not a date (YYYY-MM-DD) or date-time "
                         "(YYYY-MM-DDTHH:MM:SSZ)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value.astimezone(UTC)


def select_decisions(decisions: Iterable[Decision], last: int | None = None,
                     since: datetime | None = None, until: datetime | None = None
                     ) -> list[Decision]:
    """The decisions created in `[since, until)`, oldest first; with `last`, only the newest
    `last` of them."""
    chosen = sorted((d for d in decisions
                     if (since is None or d.created >= since)
                     and (until is None or d.created < until)),
                    key=lambda d: (d.created, d.task_id))
    return chosen[-last:] if last else chosen


# --- figures ---------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by linear interpolation between the closest ranks (numpy's
    default; `statistics.quantiles(method="inclusive")`)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Spread:
    """How a set of durations spreads: count, median and 90th percentile (seconds)."""

    count: int
    median: float
    p90: float

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "median": round(self.median, 3),
                "p90": round(self.p90, 3)}


def spread(values: Iterable[float | None]) -> Spread | None:
    """The Spread of the known values; None when there are none."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return Spread(len(known), quantile(known, 0.5), quantile(known, 0.9))


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, None when `whole` is 0."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Figures:
    """What the builds of one key and target (or of one group of builds) did."""

    builds: int
    counted: int
    failed: int
    retried: int
    runs: int
    duration: Spread | None
    queue_wait: Spread | None

    @property
    def failure_rate(self) -> float | None:
        return rate(self.failed, self.counted)

    @property
    def retry_rate(self) -> float | None:
        return rate(self.retried, self.counted)

    def to_json(self) -> dict[str, Any]:
        return {"builds": self.builds, "counted": self.counted, "failed": self.failed,
                "retried": self.retried, "runs": self.runs,
                "failure_rate": _round(self.failure_rate), "retry_rate": _round(self.retry_rate),
                "duration": _spread_json(self.duration),
                "queue_wait": _spread_json(self.queue_wait)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _spread_json(value: Spread | None) -> dict[str, Any] | None:
    return None if value is None else value.to_json()


def figures(builds: Iterable[Build]) -> Figures:
    """The Figures of a group of builds."""
    group = list(builds)
    counted = [b for b in group if b.counted]
    runs = [r for b in group for r in b.runs]
    return Figures(len(group), len(counted), sum(b.failed for b in counted),
                   sum(b.retried for b in counted), len(runs),
                   spread(r.duration for r in runs), spread(r.wait for r in runs))


@dataclass(frozen=True)
class TargetFigures:
    """Figures of one key's builds for one target, with the times of its region copies."""

    kind: str
    key: str
    target: str
    figures: Figures
    copies: tuple[tuple[str, Spread], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "target": self.target,
                **self.figures.to_json(),
                "copies": {region: s.to_json() for region, s in self.copies}}


def _grouped(builds: Iterable[Build], by: Callable[[Build], Any]) -> dict[Any, list[Build]]:
    groups: dict[Any, list[Build]] = {}
    for build in builds:
        groups.setdefault(by(build), []).append(build)
    return groups


def per_target(builds: Iterable[Build]) -> list[TargetFigures]:
    """Figures per key and target (disk images first within a key), sorted by key."""
    result = []
    groups = _grouped(builds, lambda b: (b.key, b.kind, b.target))
    for (key, kind, target), group in sorted(groups.items()):
        copies = _grouped(((region, seconds) for b in group for region, seconds in
                           b.copy_seconds), lambda c: c[0])
        result.append(TargetFigures(kind, key, target, figures(group), tuple(
            (region, spread(s for _, s in times)) for region, times in sorted(copies.items()))))
    return result


@dataclass(frozen=True)
class RegionFigures:
    """Machine-image failures in one cloud region, every key together."""

    region: str
    builds: int
    counted: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        return rate(self.failed, self.counted)

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "builds": self.builds, "counted": self.counted,
                "failed": self.failed, "failure_rate": _round(self.failure_rate)}


def per_region(builds: Iterable[Build]) -> list[RegionFigures]:
    """Machine-image failures per `<platform>/<region>`, sorted by region."""
    groups = _grouped((b for b in builds if b.kind == "machine-image"), lambda b: b.region)
    result = []
    for region, group in sorted(groups.items()):
        counted = [b for b in group if b.counted]
        result.append(RegionFigures(region, len(group), len(counted),
                                    sum(b.failed for b in counted)))
    return result


# --- over time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A stretch of the history: a week (Monday, UTC) or a run of N decisions."""

    label: str
    start: datetime


def parse_per(text: str) -> str | int:
    """`--per`: `week`, or a number of decisions; StatsError otherwise."""
    if text == WEEK:
        return WEEK
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise StatsError(f"--per {text!r}: give `week` or a number of decisions (such as 20)")


def periods(decisions: Sequence[Decision], per: str | int) -> dict[str, Period]:
    """The period of each decision (by task id); `decisions` oldest first."""
    result: dict[str, Period] = {}
    if per == WEEK:
        for d in decisions:
            monday = (d.created - timedelta(days=d.created.weekday())).replace(
                hour=0, minute=0, second=0, microsecond=0)
            year, week, _ = monday.isocalendar()
            result[d.task_id] = Period(f"{year}-W{week:02d}", monday)
        return result
    assert isinstance(per, int)
    for at in range(0, len(decisions), per):
        chunk = decisions[at:at + per]
        label = f"{chunk[0].created:%Y-%m-%d} ({at + 1}-{at + len(chunk)})"
        for d in chunk:
            result[d.task_id] = Period(label, chunk[0].created)
    return result


@dataclass(frozen=True)
class TrendPoint:
    """The figures of one period: of one key, or of every build (`key` None)."""

    key: str | None
    period: Period
    figures: Figures

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "period": self.period.label,
                "start": self.period.start.isoformat().replace("+00:00", "Z"),
                **self.figures.to_json()}


def trends(builds: Iterable[Build], of: dict[str, Period], by_key: bool = True
           ) -> list[TrendPoint]:
    """Figures per period (and per key with `by_key`), in time order."""
    groups = _grouped((b for b in builds if b.decision_id in of),
                      lambda b: (b.key if by_key else None, of[b.decision_id]))
    return [TrendPoint(key, period, figures(group)) for (key, period), group in
            sorted(groups.items(), key=lambda item: (item[0][0] or "", item[0][1].start))]


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything `cib stats` prints, for one environment and set of decisions."""

    environment: str
    project: str
    per: str | int
    decisions: tuple[Decision, ...]
    targets: tuple[TargetFigures, ...]
    regions: tuple[RegionFigures, ...]
    key_trends: tuple[TrendPoint, ...]
    trend: tuple[TrendPoint, ...]
    overall: Figures
    generated: datetime | None = None  # when it was read (the caller's clock)

    def to_json(self) -> dict[str, Any]:
        first = self.decisions[0].created if self.decisions else None
        last = self.decisions[-1].created if self.decisions else None
        return {
            "environment": self.environment, "project": self.project, "per": self.per,
            "generated": _stamp(self.generated),
            "decisions": {"count": len(self.decisions), "first": _stamp(first),
                          "last": _stamp(last)},
            "overall": self.overall.to_json(),
            "targets": [t.to_json() for t in self.targets],
            "regions": [r.to_json() for r in self.regions],
            "trends": {"all": [p.to_json() for p in self.trend],
                       "keys": [p.to_json() for p in self.key_trends]},
        }


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def report(environment: str, project: str, decisions: Sequence[Decision],
           builds: Sequence[Build], per: str | int = WEEK,
           generated: datetime | None = None) -> Report:
    """The Report of `builds`, made by `decisions` (oldest first), read at `generated`."""
    of = periods(decisions, per)
    mine = [b for b in builds if b.decision_id in of]
    # a key's trend is its machine images' (a disk image takes minutes, not hours)
    machines = [b for b in mine if b.kind == "machine-image"]
    return Report(environment, project, per, tuple(decisions), tuple(per_target(mine)),
                  tuple(per_region(mine)), tuple(trends(machines, of)),
                  tuple(trends(mine, of, by_key=False)), figures(mine), generated)

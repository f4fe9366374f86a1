"""`cib stats` in the terminal: one row per key and target, failures per region, and each
key's median build time per period (rich tables; plain text when not on a terminal)."""

from __future__ import annotations

import io

from .stats import Report, Spread


def duration(seconds: float | None) -> str:
    """`1h 05m`, `12m 30s`, `45s`; `-` when unknown."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def percent(value: float | None) -> str:
    """`12.5%`; `-` when there is nothing to divide."""
    return "-" if value is None else f"{value * 100:.1f}%"


def _median(value: Spread | None) -> str:
    return duration(value.median if value else None)


def _p90(value: Spread | None) -> str:
    return duration(value.p90 if value else None)


def table(report: Report) -> str:
    """The report as text tables."""
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None, highlight=False)
    first = report.decisions[0].created if report.decisions else None
    last = report.decisions[-1].created if report.decisions else None
    span = f", {first:%Y-%m-%d} to {last:%Y-%m-%d}" if first and last else ""
    console.print(f"{report.environment} ({report.project}): {len(report.decisions)} "
                  f"decisions{span}, {report.overall.builds} builds, "
                  f"{percent(report.overall.failure_rate)} failed, "
                  f"{percent(report.overall.retry_rate)} retried", markup=False)
    builds = Table("key", "target", "builds", "median", "p90", "wait median", "wait p90",
                   "failed", "retried", "copies (median)", box=None, pad_edge=False)
    shown = ""
    for row in report.targets:
        f = row.figures
        copies = ", ".join(f"{region} {duration(s.median)}" for region, s in row.copies)
        builds.add_row(row.key if row.key != shown else "", row.target, str(f.builds),
                       _median(f.duration), _p90(f.duration), _median(f.queue_wait),
                       _p90(f.queue_wait), percent(f.failure_rate), percent(f.retry_rate),
                       copies or "-")
        shown = row.key
    console.print(builds)
    if report.regions:
        regions = Table("region", "ran", "failed", "failure rate", box=None, pad_edge=False)
        for region in report.regions:
            regions.add_row(region.region, str(region.counted), str(region.failed),
                            percent(region.failure_rate))
        console.print()
        console.print(regions)
    labels = list(dict.fromkeys(p.period.label for p in report.trend))
    if labels:
        trend = Table("machine image median", *labels, box=None, pad_edge=False)
        cells: dict[str, dict[str, str]] = {}
        for point in report.key_trends:
            cells.setdefault(point.key or "", {})[point.period.label] = _median(
                point.figures.duration)
        for key, by_period in cells.items():
            trend.add_row(key, *(by_period.get(label, "") for label in labels))
        trend.add_row("(failed)", *(percent(p.figures.failure_rate) for p in report.trend))
        trend.add_row("(wait median)", *(_median(p.figures.queue_wait) for p in report.trend))
        console.print()
        console.print(trend)
    return "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines())

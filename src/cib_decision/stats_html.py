"""`cib stats --format html`: the report as one self-contained page (no scripts, fonts or
images from elsewhere; the charts are inline SVG): headline figures, machine-image build times
per key over time, failures per region, queue wait over time, and the table of every key and
target."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from .stats import Report, TrendPoint
from .stats_table import duration, percent

# One colour per key, in key order (distinct for the colour-blind as far as eight go).
KEY_COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777",
               "#475569")
FAILURE_COLOUR = "#dc2626"
WAIT_MEDIAN_COLOUR = "#0d9488"
WAIT_P90_COLOUR = "#f59e0b"
GRID = "#e5e7eb"
INK = "#1f2937"
MUTED = "#6b7280"

Series = tuple[str, str, Sequence[float | None]]  # name, colour, one value per label

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f8fafc; color: #1f2937; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
.sub { color: #6b7280; margin: 0 0 18px; }
.tiles { display: flex; gap: 12px; margin-bottom: 18px; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 12px 16px;
        flex: 1; min-width: 140px; }
.tile b { display: block; font-size: 24px; margin-top: 2px; }
.tile span { color: #6b7280; font-size: 13px; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 16px;
        margin-bottom: 16px; }
.row { display: flex; gap: 16px; }
.row .card { flex: 1; min-width: 0; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 13px; margin-top: 6px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
            margin-right: 5px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #f1f5f9; }
th { color: #6b7280; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #dc2626; font-weight: 600; }
.empty { color: #6b7280; padding: 30px 0; text-align: center; }
"""


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


# Grid steps of a time axis, in seconds: whole minutes and hours.
TIME_STEPS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 5400, 7200, 10800, 21600)


def _ticks(top: float, count: int = 4) -> list[float]:
    """Grid values from 0 to at least `top`, about `count` steps of a round time."""
    if top <= 0:
        return [0.0, 60.0]
    step = next((s for s in TIME_STEPS if s * count >= top), TIME_STEPS[-1])
    return [float(step * i) for i in range(int(top // step) + 2)]


def line_chart(labels: Sequence[str], series: Sequence[Series],
               form: Callable[[float], str], label: str, width: int = 1100,
               height: int = 300) -> str:
    """Lines with a point per known value, one per series, over `labels`."""
    if not labels or not any(v is not None for _, _, values in series for v in values):
        return '<p class="empty">no builds in this window</p>'
    left, right, top, bottom = 70, 20, 14, 40
    values = [v for _, _, vs in series for v in vs if v is not None]
    ticks = _ticks(max(values))
    high = ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(at: int) -> float:
        return left + (plot_w * (at + 0.5) / len(labels))

    def y(value: float) -> float:
        return top + plot_h * (1 - value / high)

    body = []
    for tick in ticks:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
                    f'y2="{y(tick):.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" font-size="12" '
                    f'fill="{MUTED}" text-anchor="end">{escape(form(tick))}</text>')
    every = max(1, math.ceil(len(labels) * 80 / plot_w))  # labels about 80 units apart
    for at, text in enumerate(labels):
        if at % every == 0:
            body.append(f'<text x="{x(at):.1f}" y="{height - 14}" font-size="12" '
                        f'fill="{MUTED}" text-anchor="middle">{escape(text)}</text>')
    for name, colour, series_values in series:
        points = [(x(at), y(v)) for at, v in enumerate(series_values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                        'stroke-width="3" stroke-linejoin="round" stroke-linecap="round"/>')
        for (px, py), v in zip(points, [v for v in series_values if v is not None],
                               strict=True):
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4.5" fill="{colour}">'
                        f'<title>{escape(name)}: {escape(form(v))}</title></circle>')
    return _svg(width, height, body, label)


def bar_chart(rows: Sequence[tuple[str, float, str]], colour: str, label: str,
              width: int = 540, bar: int = 26) -> str:
    """Horizontal bars (`(label, share 0..1, text)`), longest scale 100% of the widest."""
    if not rows:
        return '<p class="empty">no machine-image builds in this window</p>'
    left, right, gap = 150, 120, 10
    height = len(rows) * (bar + gap) + gap
    widest = max(max(share for _, share, _ in rows), 0.01)
    body = []
    for at, (name, share, text) in enumerate(rows):
        top = gap + at * (bar + gap)
        length = (width - left - right) * share / widest
        body.append(f'<text x="{left - 10}" y="{top + bar / 2 + 5}" font-size="13" '
                    f'fill="{INK}" text-anchor="end">{escape(name)}</text>')
        body.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" '
                    f'height="{bar}" rx="4" fill="#f1f5f9"/>')
        if length > 0:
            body.append(f'<rect x="{left}" y="{top}" width="{max(length, 3):.1f}" '
                        f'height="{bar}" rx="4" fill="{colour}"><title>{escape(name)}: '
                        f'{escape(text)}</title></rect>')
        body.append(f'<text x="{width - right + 8}" y="{top + bar / 2 + 5}" font-size="13" '
                    f'fill="{INK}">{escape(text)}</text>')
    return _svg(width, height, body, label)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{colour}"></i>{escape(name)}</span>'
        for name, colour in items) + "</div>"


def _minutes(seconds: float) -> str:
    """A time axis value: `2h`, `1h 30m`, `45m`, `30s`."""
    whole = round(seconds)
    if whole % 60:
        return duration(whole)
    hours, minutes = divmod(whole // 60, 60)
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else "0"


def _by_period(points: Sequence[TrendPoint], labels: Sequence[str],
               value: Callable[[TrendPoint], float | None]) -> list[float | None]:
    found = {p.period.label: value(p) for p in points}
    return [found.get(label) for label in labels]


def key_colours(report: Report) -> dict[str, str]:
    """The colour of each key's line (keys with machine-image builds, in order)."""
    keys = sorted({p.key or "" for p in report.key_trends})
    return {key: KEY_COLOURS[at % len(KEY_COLOURS)] for at, key in enumerate(keys)}


def duration_chart(report: Report) -> str:
    """Median machine-image build time per key and period."""
    labels = [p.period.label for p in report.trend]
    colours = key_colours(report)
    series = [(key, colour, _by_period([p for p in report.key_trends if p.key == key], labels,
                                       lambda p: p.figures.duration.median
                                       if p.figures.duration else None))
              for key, colour in colours.items()]
    return (line_chart(labels, series, _minutes, "median machine-image build time per key")
            + _legend([(key, colour) for key, colour in colours.items()]))


def failure_chart(report: Report) -> str:
    """Failure rate of machine-image builds per region."""
    rows = [(r.region, r.failure_rate or 0.0,
             f"{percent(r.failure_rate)} ({r.failed}/{r.counted})")
            for r in report.regions if r.counted]
    return bar_chart(rows, FAILURE_COLOUR, "failure rate per region")


def wait_chart(report: Report) -> str:
    """Median and 90th percentile queue wait per period."""
    labels = [p.period.label for p in report.trend]
    series = [("median", WAIT_MEDIAN_COLOUR, _by_period(
        report.trend, labels, lambda p: p.figures.queue_wait.median
        if p.figures.queue_wait else None)),
        ("90th percentile", WAIT_P90_COLOUR, _by_period(
            report.trend, labels, lambda p: p.figures.queue_wait.p90
            if p.figures.queue_wait else None))]
    return (line_chart(labels, series, _minutes, "queue wait per period", width=540,
                       height=260)
            + _legend([("median", WAIT_MEDIAN_COLOUR),
                       ("90th percentile", WAIT_P90_COLOUR)]))


def _tiles(report: Report) -> str:
    o = report.overall
    tiles = [("decisions", str(len(report.decisions))), ("builds", str(o.builds)),
             ("median build", duration(o.duration.median if o.duration else None)),
             ("median queue wait", duration(o.queue_wait.median if o.queue_wait else None)),
             ("failed", percent(o.failure_rate)), ("retried", percent(o.retry_rate))]
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><span>{escape(name)}</span><b>{escape(value)}</b></div>'
        for name, value in tiles) + "</div>"


def _table(report: Report) -> str:
    head = ("key", "target", "builds", "median", "p90", "wait median", "failed", "retried",
            "copies (median)")
    rows = []
    for t in report.targets:
        f = t.figures
        bad = f.failure_rate is not None and f.failure_rate >= 0.2
        copies = ", ".join(f"{region} {duration(s.median)}" for region, s in t.copies) or "-"
        cells = [f"<td>{escape(t.key)}</td>", f"<td>{escape(t.target)}</td>",
                 f'<td class="n">{f.builds}</td>',
                 f'<td class="n">{duration(f.duration.median if f.duration else None)}</td>',
                 f'<td class="n">{duration(f.duration.p90 if f.duration else None)}</td>',
                 f'<td class="n">'
                 f'{duration(f.queue_wait.median if f.queue_wait else None)}</td>',
                 f'<td class="n{" bad" if bad else ""}">{percent(f.failure_rate)}</td>',
                 f'<td class="n">{percent(f.retry_rate)}</td>',
                 f"<td>{escape(copies)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def html(report: Report) -> str:
    """The whole page."""
    first = report.decisions[0].created if report.decisions else None
    last = report.decisions[-1].created if report.decisions else None
    span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if first and last else "no decisions"
    per = "week" if report.per == "week" else f"{report.per} decisions"
    generated = (f"; read {report.generated:%Y-%m-%d %H:%M} UTC" if report.generated
                 else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Image builds: {escape(report.environment)}</title>
<style>{STYLE}</style></head>
<body><main>
<h1>Image builds in {escape(report.environment)}</h1>
<p class="sub">{escape(report.project)}: {len(report.decisions)} decisions, {escape(span)};
one point per {escape(per)}{generated}</p>
{_tiles(report)}
<section class="card" id="durations"><h2>Machine-image build time per key (median)</h2>
{duration_chart(report)}</section>
<div class="row">
<section class="card" id="failures"><h2>Failed builds per region</h2>
{failure_chart(report)}</section>
<section class="card" id="wait"><h2>Queue wait (scheduled to started)</h2>
{wait_chart(report)}</section>
</div>
<section class="card" id="targets"><h2>Every key and target</h2>
{_table(report)}</section>
</main></body></html>
"""

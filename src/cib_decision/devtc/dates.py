"""Dates as the services handle them: JavaScript `Date` precision (milliseconds) and
`Date.toJSON()` text (`2024-05-01T12:00:00.000Z`) (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse(text: str) -> datetime:
    """An RFC 3339 date-time (already schema-checked) as an aware UTC datetime in milliseconds."""
    value = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def to_json(value: datetime) -> str:
    """`Date.toJSON()`: UTC, milliseconds, `Z`."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def normalise(text: str) -> str:
    """A date-time string re-written as `Date.toJSON()` writes it."""
    return to_json(parse(text))


def plus_one_year(value: datetime) -> datetime:
    """`Date.setFullYear(year + 1)`: 29 February rolls over to 1 March."""
    try:
        return value.replace(year=value.year + 1)
    except ValueError:
        return value.replace(year=value.year + 1, month=3, day=1)


def now() -> datetime:
    """The server clock, in milliseconds."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


MINUTES_15 = timedelta(minutes=15)

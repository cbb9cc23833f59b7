"""Time helpers: everything inside RediSolar is timezone-aware UTC; naive input means UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UTC = UTC
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: datetime) -> int:
    """Milliseconds since the Unix epoch (naive means UTC), exact to the millisecond."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_MS


def from_ms(millis: int) -> datetime:
    """The aware UTC datetime of ``millis`` since the Unix epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(millis))


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def day_number(millis: int) -> int:
    """The UTC day (days since the epoch) that ``millis`` falls in."""
    return millis // MS_PER_DAY


def day_start(value: datetime) -> datetime:
    """Midnight UTC of the day ``value`` falls in."""
    return as_utc(value).replace(hour=0, minute=0, second=0, microsecond=0)

"""Domain models for solar sites and their data (the seed's Step 2 dataclasses, hardened).

Every datetime a model holds is timezone-aware UTC; a naive datetime given to a model is taken as UTC.
Numbers must be finite; text must be free of control characters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import ClassVar

from redisolar.localtime import is_timezone
from redisolar.settings import DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_READING_WH, MAX_READING_WH_LIMIT
from redisolar.timeutil import as_utc, to_ms, utcnow

MAX_SITE_ID = 2**53 - 1  # ids become key segments and JSON numbers: keep them exact everywhere
ABSOLUTE_ZERO_C = -273.15
MIN_CAPACITY_KW = 1e-6  # 1 mW: even then a day's capacity factor stays finite (see MeterReading)
MAX_CAPACITY_KW = 1e7  # 10 GW, as the API's schema
MAX_TEMP_C = 1000.0
"""The hottest plausible reading (°C): hotter than any panel, inverter or meter survives."""
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_site_id(site_id: object) -> int:
    """Return ``site_id`` if it is a valid site id (an int in 1..2**53-1), else raise ValueError."""
    if isinstance(site_id, bool) or not isinstance(site_id, int):
        raise ValueError(f"Site id must be an integer, got {site_id!r}")
    if not 1 <= site_id <= MAX_SITE_ID:
        raise ValueError(f"Site id must be between 1 and {MAX_SITE_ID}, got {site_id}")
    return site_id


def check_finite(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_text(name: str, value: object, *, max_length: int = 200) -> str:
    """Return ``value`` if it is a non-blank string without control characters, else raise ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if not value.strip():
        raise ValueError(f"{name} cannot be empty")
    if len(value) > max_length:
        raise ValueError(f"{name} must be at most {max_length} characters")
    if _CONTROL_CHARS.search(value):
        raise ValueError(f"{name} must not contain control characters")
    return value


def check_timezone(name: object) -> str:
    """Return ``name`` if it is an IANA time zone name this system knows, else raise ValueError."""
    if not is_timezone(name):
        raise ValueError(f"Unknown time zone {name!r}: expected an IANA name like 'America/Phoenix' or 'UTC'")
    return str(name)


@dataclass(frozen=True, eq=True)
class Coordinate:
    """Geographic coordinate (latitude, longitude) in degrees."""

    lat: float
    lng: float

    def __post_init__(self) -> None:
        lat = check_finite("Latitude", self.lat)
        lng = check_finite("Longitude", self.lng)
        if not -90 <= lat <= 90:
            raise ValueError(f"Invalid latitude: {self.lat}")
        if not -180 <= lng <= 180:
            raise ValueError(f"Invalid longitude: {self.lng}")
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lng", lng)


@dataclass(frozen=True, eq=True)
class Site:
    """A solar power installation site.

    ``timezone`` is its IANA time zone (``America/Phoenix``), which its local days follow; None only
    for a site stored before sites had one (the start-up migration gives it one). The services fill
    it in when a site is created or replaced without one (:mod:`redisolar.timezones`).
    """

    id: int
    capacity: float  # kW
    panels: int
    address: str
    city: str
    state: str
    postal_code: str
    coordinate: Coordinate | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        check_site_id(self.id)
        capacity = check_finite("Capacity", self.capacity)
        if capacity <= 0:
            raise ValueError("Capacity must be positive")
        if not MIN_CAPACITY_KW <= capacity <= MAX_CAPACITY_KW:
            raise ValueError(f"Capacity must be between {MIN_CAPACITY_KW:g} and {MAX_CAPACITY_KW:g} kW")
        object.__setattr__(self, "capacity", capacity)
        if isinstance(self.panels, bool) or not isinstance(self.panels, int) or self.panels <= 0:
            raise ValueError("Panels must be positive")
        check_text("Address", self.address)
        check_text("City", self.city, max_length=100)
        check_text("State", self.state, max_length=50)
        check_text("Postal code", self.postal_code, max_length=20)
        if self.coordinate is not None and not isinstance(self.coordinate, Coordinate):
            raise ValueError("Coordinate must be a Coordinate")
        if self.timezone is not None:
            check_timezone(self.timezone)


@dataclass(frozen=True, eq=True)
class MeterReading:
    """One meter reading of a site: energy generated and used since the previous one, and temperature.

    ``max_clock_skew`` bounds how far in the future a timestamp may lie (meters' clocks drift); the
    application sets it from its configuration with :func:`configure_clock_skew`.

    Bounds (``-0.0`` is stored as ``0.0``): energies in ``[0, max_reading_wh]`` Wh (configured with
    :func:`configure_reading_bounds`, default :data:`DEFAULT_MAX_READING_WH` = 1e11, at most
    :data:`MAX_READING_WH_LIMIT` = 1e15), temperature in ``[-273.15, 1000]`` °C. They keep every stored
    aggregate finite (the largest double is about 1.8e308); with B = 1e15, the largest configurable bound:

    - a site's day total: at most 86,400,000 distinct ms timestamps × B = 8.64e22 Wh;
    - any range of a site (30 days, or everything: timestamps lie between 1970 and now + at most 366
      days of clock skew, under 2e12 ms): at most 2e12 × B = 2e27 Wh; used energy and net generation
      alike (|net| ≤ B per reading);
    - a day board's running sum over all MAX_SITE_ID ≈ 9.0e15 sites: 9.0e15 × 8.64e22 ≈ 7.8e38 Wh;
    - a fleet hour: 3,600,000 ms × 9.0e15 sites × B ≈ 3.2e37 Wh; a summary of 9,600 hours ≈ 3.1e41;
    - efficiency (capacity ≥ 0.1 kW by schema): 100 × 8.64e22 / (0.1 × 1000 × 24) = 3.6e21 % per
      site-day, 3.2e37 summed over every site; over a range of 1 ms, 100 × B / (0.1 × 1000 / 3.6e6)
      = 3.6e21 %;
    - temperature sums (averages): 2e12 readings × 1000 °C = 2e15; running differences (new − old) in
      the Lua scripts stay below twice these sums.

    All lie below 1e42, far from 1.8e308, so no aggregate can overflow, whatever is sent.
    """

    site_id: int
    timestamp: datetime
    wh_generated: float  # Watt-hours generated
    wh_used: float  # Watt-hours used
    temp_c: float  # Temperature in Celsius

    max_clock_skew: ClassVar[timedelta] = timedelta(seconds=DEFAULT_CLOCK_SKEW_SECONDS)
    max_reading_wh: ClassVar[float] = DEFAULT_MAX_READING_WH

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        object.__setattr__(self, "timestamp", check_reading_time(self.timestamp))
        object.__setattr__(self, "wh_generated", check_energy("Generated energy", self.wh_generated))
        object.__setattr__(self, "wh_used", check_energy("Used energy", self.wh_used))
        object.__setattr__(self, "temp_c", check_temperature(self.temp_c))

    @property
    def net_generation(self) -> float:
        """Net generation (generated - used), in Wh."""
        return self.wh_generated - self.wh_used

    @property
    def timestamp_millis(self) -> int:
        """The timestamp in milliseconds since the epoch."""
        return to_ms(self.timestamp)


def check_reading_time(timestamp: object) -> datetime:
    """Return ``timestamp`` as aware UTC if it may time a reading (1970 or later, and not further in
    the future than the clock-skew allowance), else raise ValueError."""
    if not isinstance(timestamp, datetime):
        raise ValueError("Timestamp must be a datetime")
    try:
        value = as_utc(timestamp)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC datetime
        raise ValueError("Timestamp is out of range") from None
    if value.year < 1970:
        raise ValueError("Timestamp must not be before 1970-01-01T00:00:00Z")
    if value > utcnow() + MeterReading.max_clock_skew:
        raise ValueError(
            f"Timestamp {value.isoformat()} is in the future "
            f"(allowed clock skew: {int(MeterReading.max_clock_skew.total_seconds())} s)"
        )
    return value


def check_energy(name: str, value: object) -> float:
    """Return ``value`` as a float (``-0.0`` as ``0.0``) if it is an energy in
    ``[0, MeterReading.max_reading_wh]`` Wh, else raise ValueError."""
    energy = check_finite(name, value) + 0.0  # -0.0 + 0.0 == +0.0
    if energy < 0:
        raise ValueError(f"{name} cannot be negative")
    if energy > MeterReading.max_reading_wh:
        raise ValueError(f"{name} must be at most {MeterReading.max_reading_wh:g} Wh (MAX_READING_WH)")
    return energy


def check_temperature(value: object) -> float:
    """Return ``value`` as a float (``-0.0`` as ``0.0``) if it is a temperature in ``[-273.15, 1000]``
    °C, else raise ValueError."""
    temp = check_finite("Temperature", value) + 0.0
    if temp < ABSOLUTE_ZERO_C:
        raise ValueError("Temperature cannot be below absolute zero (-273.15 °C)")
    if temp > MAX_TEMP_C:
        raise ValueError(f"Temperature must be at most {MAX_TEMP_C:g} °C")
    return temp


def configure_reading_bounds(max_reading_wh: float) -> None:
    """Set the largest energy one reading may carry, in Wh (process-wide)."""
    if not 0 < max_reading_wh <= MAX_READING_WH_LIMIT:
        raise ValueError(f"The bound on a reading's energy must be in (0, {MAX_READING_WH_LIMIT:g}] Wh")
    MeterReading.max_reading_wh = float(max_reading_wh)


def configure_clock_skew(allowance: timedelta) -> None:
    """Set how far in the future a reading's timestamp may lie (process-wide)."""
    if allowance < timedelta(0):
        raise ValueError("Clock skew allowance cannot be negative")
    MeterReading.max_clock_skew = allowance


@dataclass(frozen=True, eq=True)
class SiteStats:
    """Statistics for a solar site."""

    site_id: int
    last_reporting_time: datetime
    meter_reading_count: int
    max_capacity: float
    min_capacity: float
    total_energy_wh: float
    current_capacity: float

    def __post_init__(self) -> None:
        if self.meter_reading_count < 0:
            raise ValueError("Reading count cannot be negative")
        if self.max_capacity < self.min_capacity:
            raise ValueError("Max capacity cannot be less than min capacity")
        object.__setattr__(self, "last_reporting_time", as_utc(self.last_reporting_time))


class MetricType(Enum):
    """Types of metrics we track."""

    WH_GENERATED = "wh_generated"
    WH_USED = "wh_used"
    TEMP_C = "temp_c"
    NET_GENERATION = "net_generation"


@dataclass(frozen=True)
class TimeSeriesData:
    """One point of a time series (a raw sample or an aggregation bucket)."""

    timestamp: datetime
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", as_utc(self.timestamp))

    @property
    def timestamp_millis(self) -> int:
        """The timestamp in milliseconds since the epoch."""
        return to_ms(self.timestamp)


@dataclass(frozen=True)
class SiteRanking:
    """A site's ranking in a leaderboard."""

    site_id: int
    score: float
    rank: int
    site: Site | None = None


@dataclass(frozen=True)
class LeaderboardEntry:
    """Leaderboard entry with site information."""

    site: Site
    score: float
    rank: int


@dataclass(frozen=True)
class SiteAnalytics:
    """Analytics of a site over the period ``[period_start, period_end)``."""

    site_id: int
    period_start: datetime
    period_end: datetime
    total_generated: float
    total_used: float
    avg_generation: float
    max_generation: float
    min_generation: float
    avg_temperature: float
    efficiency_percent: float  # capacity factor: 100 * Wh / (kW * 1000 * hours in the period)
    reading_count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "period_start", as_utc(self.period_start))
        object.__setattr__(self, "period_end", as_utc(self.period_end))

"""One verdict per (site, rule) from the data the evaluator gathered: pure functions, no Redis.

A verdict is ``True`` (the condition holds: open, or keep open), ``False`` (it does not: resolve) or
``None`` (cannot tell now, e.g. the sun is down for a daylight rule: leave the alert as it is), with
the values it was decided on (kept with the alert).
"""

from __future__ import annotations

import itertools
import operator
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redisolar.alerts import solar
from redisolar.alerts.rules import Rule
from redisolar.models.site import Site
from redisolar.timeutil import from_ms

MS_PER_MINUTE = 60_000
MIN_OFFLINE_MINUTES = 15.0
OFFLINE_INTERVALS = 3.0
"""offline without ``minutes``: silent for this many usual intervals (and at least 15 minutes)."""
DAYLIGHT_ELEVATION = 10.0
"""daylight: the sun at least this high (degrees) over the whole window."""
EXPECTATION_ELEVATION = 15.0
"""underperformance: the sun at least this high over the window (low sun: shading dominates)."""
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """Whether a rule's condition holds at a site (None: cannot tell), and the values behind it."""

    holds: bool | None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class SiteData:
    """What the evaluator read for one site."""

    site: Site
    newest_ms: int | None = None
    usual_interval_min: float | None = None
    sums: dict[int, tuple[float, int]] = field(default_factory=dict)
    """window minutes -> (Wh generated, readings) over the window ending now."""
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)
    """metric -> (ms, value) of its newest reading (only when a threshold rule needs it)."""
    neighbours: dict[float, list[int]] = field(default_factory=dict)
    """radius km -> ids of the sites within it (itself excluded)."""


YieldOf = Callable[[int, int], float | None]
"""(site id, window minutes) -> kWh per kWp over the window, None without readings or capacity."""


def offline(rule: Rule, data: SiteData, now_ms: int) -> Verdict:
    """Silent for longer than the rule's minutes (or 3 × its usual interval, at least 15 min)."""
    if data.newest_ms is None:
        return Verdict(None)
    limit = rule.minutes or max(MIN_OFFLINE_MINUTES, OFFLINE_INTERVALS * (data.usual_interval_min or 0.0))
    silent = (now_ms - data.newest_ms) / MS_PER_MINUTE
    values = {"last_reading": from_ms(data.newest_ms).isoformat(), "minutes_silent": round(silent, 1),
              "limit_minutes": round(limit, 1)}  # fmt: skip
    return Verdict(silent > limit, values)


def daylight(rule: Rule, data: SiteData, now_ms: int) -> Verdict:
    """Near-zero generation over the window while the sun stood high at the site."""
    site, window = data.site, rule.window_minutes
    if site.coordinate is None or window not in data.sums:
        return Verdict(None)
    start = now_ms - window * MS_PER_MINUTE
    lat, lng = site.coordinate.lat, site.coordinate.lng
    wh, count = data.sums[window]
    if count == 0 or not solar.sun_up_throughout(lat, lng, start, now_ms, DAYLIGHT_ELEVATION):
        return Verdict(None)  # no readings: the offline rule's case; sun low: cannot tell
    limit = rule.near_zero_wh_per_kw * site.capacity * window / 60
    elevation = round(solar.solar_elevation(now_ms, lat, lng), 1)
    values = {"wh_generated": round(wh, 3), "readings": count, "near_zero_wh": round(limit, 3),
              "window_minutes": window, "sun_elevation": elevation}  # fmt: skip
    return Verdict(wh <= limit, values)


def underperformance(rule: Rule, data: SiteData, now_ms: int, yield_of: YieldOf) -> Verdict:
    """Below ``percent`` % of the clear-sky expectation *and* of the neighbours' median specific yield
    (so a cloudy region, where the neighbours are low too, does not alert). Without a neighbour with
    readings within ``radius_km`` it cannot tell (None): the daylight rule covers dead sites."""
    site, window = data.site, rule.window_minutes
    if site.coordinate is None or site.capacity <= 0 or window not in data.sums:
        return Verdict(None)
    start = now_ms - window * MS_PER_MINUTE
    lat, lng = site.coordinate.lat, site.coordinate.lng
    wh, count = data.sums[window]
    if count == 0 or not solar.sun_up_throughout(lat, lng, start, now_ms, EXPECTATION_ELEVATION):
        return Verdict(None)
    others = [y for n in data.neighbours.get(rule.radius_km, []) if (y := yield_of(n, window)) is not None]
    if not others:
        return Verdict(None)
    expected = solar.clear_sky_wh(site.capacity, lat, lng, start, now_ms)
    own, typical = wh / 1000 / site.capacity, statistics.median(others)
    of_sky = 100 * wh / expected if expected > 0 else 100.0
    of_neighbours = 100 * own / typical if typical > 0 else 100.0
    values = {"wh_generated": round(wh, 3), "clear_sky_wh": round(expected, 3), "percent_of_clear_sky":
              round(of_sky, 1), "kwh_per_kwp": round(own, 4), "neighbours": len(others),
              "neighbours_kwh_per_kwp": round(typical, 4), "percent_of_neighbours": round(of_neighbours, 1),
              "window_minutes": window}  # fmt: skip
    return Verdict(of_sky < rule.percent and of_neighbours < rule.percent, values)


def threshold(rule: Rule, data: SiteData) -> Verdict:
    """The metric's newest reading compared with the rule's value."""
    return threshold_of(rule, data.latest.get(rule.metric or ""))


def threshold_of(rule: Rule, latest: tuple[int, float] | None) -> Verdict:
    """A threshold rule on ``latest`` = (ms, value) of its metric's newest reading (None: unknown)."""
    if latest is None or rule.op is None or rule.value is None:
        return Verdict(None)
    ms, value = latest
    values = {"metric": rule.metric, "value": value, "at": from_ms(ms).isoformat(), "limit": rule.value,
              "op": rule.op}  # fmt: skip
    return Verdict(OPS[rule.op](value, rule.value), values)


def usual_interval(timestamps: list[int]) -> float | None:
    """The median gap in minutes between consecutive readings (None with fewer than two)."""
    gaps = [b - a for a, b in itertools.pairwise(timestamps) if b > a]
    return statistics.median(gaps) / MS_PER_MINUTE if gaps else None

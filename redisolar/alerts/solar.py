"""Where the sun is at a site, and what a clear sky lets a site make.

Decisions: the solar position is the NOAA "general solar position" series (Spencer's Fourier terms for
the declination and the equation of time): within about 0.5° of the full algorithm, far finer than
what the rules need (is the sun well up? how much should a site make in an hour?). Clear-sky
irradiance is Haurwitz's model (the sample data's, :func:`redisolar.sample_data.clear_sky_ghi`), and
a site makes ``capacity × DERATE × GHI / 1000 W/m²`` (panels flat enough that horizontal irradiance
stands for the plane's): the expectation is a yardstick shared by the whole fleet, not a forecast.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

MS_PER_MINUTE = 60_000
DERATE = 0.8
"""AC output per kWp under 1000 W/m² (inverter, wiring, soiling, orientation losses)."""
STEP_MINUTES = 5
"""The integration step of :func:`clear_sky_wh`."""


def _fractional_year(when: datetime) -> float:
    """γ in radians: the position in the year (NOAA)."""
    start = datetime(when.year, 1, 1, tzinfo=UTC)
    days = 366 if when.year % 4 == 0 and (when.year % 100 != 0 or when.year % 400 == 0) else 365
    return 2 * math.pi / days * ((when - start).total_seconds() / 86_400 - 0.5)


def _declination_and_eot(gamma: float) -> tuple[float, float]:
    """The sun's declination (radians) and the equation of time (minutes)."""
    declination = (
        0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma)
    )  # fmt: skip
    eot = 229.18 * (
        0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma)
    )  # fmt: skip
    return declination, eot


def solar_elevation(ms: int, lat: float, lng: float) -> float:
    """The sun's elevation above the horizon in degrees (negative below it) at ``ms`` (epoch ms, UTC)
    seen from ``lat``/``lng`` (degrees, east positive), without refraction."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    declination, eot = _declination_and_eot(_fractional_year(when))
    minutes = when.hour * 60 + when.minute + when.second / 60
    true_solar_minutes = minutes + eot + 4 * lng
    hour_angle = math.radians(true_solar_minutes / 4 - 180)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(declination) + math.cos(phi) * math.cos(declination) * math.cos(
        hour_angle
    )
    return math.degrees(math.asin(max(-1.0, min(1.0, cos_zenith))))


def clear_sky_ghi(elevation_deg: float) -> float:
    """Clear-sky global horizontal irradiance in W/m² (Haurwitz); 0 when the sun is (nearly) down."""
    cos_z = math.sin(math.radians(elevation_deg))
    if cos_z <= 0.01:
        return 0.0
    return 1098.0 * cos_z * math.exp(-0.057 / cos_z)


def clear_sky_wh(capacity_kw: float, lat: float, lng: float, start_ms: int, end_ms: int) -> float:
    """What a site of ``capacity_kw`` makes in ``[start_ms, end_ms)`` under a clear sky, in Wh
    (midpoint rule, :data:`STEP_MINUTES` steps)."""
    step = STEP_MINUTES * MS_PER_MINUTE
    total = 0.0
    for t in range(start_ms, end_ms, step):
        width = min(step, end_ms - t)
        ghi = clear_sky_ghi(solar_elevation(t + width // 2, lat, lng))
        total += capacity_kw * DERATE * ghi * width / 3_600_000
    return total


def sun_up_throughout(lat: float, lng: float, start_ms: int, end_ms: int, min_elevation: float) -> bool:
    """Whether the sun stands at least ``min_elevation`` degrees high over all of ``[start_ms, end_ms]``
    (checked at both ends and every 15 minutes: the elevation has one maximum a day)."""
    step = 15 * MS_PER_MINUTE
    times = [*range(start_ms, end_ms, step), end_ms]
    return all(solar_elevation(t, lat, lng) >= min_elevation for t in times)

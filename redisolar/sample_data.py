"""Sample data for ``redisolar load`` and ``redisolar demo``: the seed's fleet, or a larger synthetic one.

- The default is the seed's Step 9 data: its 5 sites (same ids, capacities, panels, addresses,
  coordinates) and 7 days of hourly readings with the seed's curve. Unlike the seed, the readings
  **end at the current hour** (the newest is timed at the start of the current UTC hour) instead of
  running into today's future hours, and the curve's "hour" is the site's local solar hour (the seed
  used the clock of the machine that loaded it).
- :func:`plan_sample_data` with more sites builds a synthetic fleet: the 5 seed sites plus sites
  spread over US metro areas with residential, commercial and a few utility-scale capacities, and a
  clear-sky model (sun elevation by latitude, season and longitude, regional weather by day,
  noise) at any interval.

Generation is lazy and deterministic for a given ``seed`` and end time: every site and every
(region, day) draws from its own random stream, so a site's readings do not depend on the others.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from redisolar.errors import InvalidInput
from redisolar.models.site import Coordinate, MeterReading, Site
from redisolar.services import Services
from redisolar.services.ingest import ingest_readings
from redisolar.timeutil import MS_PER_DAY, from_ms, to_ms, utcnow
from redisolar.timezones import derived_timezone

Profile = Literal["seed", "clear-sky"]
PROFILES: tuple[str, ...] = ("auto", "seed", "clear-sky")
MS_PER_MINUTE = 60_000
DEFAULT_BATCH_SIZE = 2000

# -- the seed's Step 9 sites, exactly, with the zones of their coordinates (tests/test_sample_data.py
# checks them against redisolar.timezones; written out so that importing this module looks nothing up)
SEED_SITES: tuple[Site, ...] = (
    Site(1, 4.5, 12, "123 Solar Street", "Sunnyville", "CA", "90210", Coordinate(34.0522, -118.2437),
         "America/Los_Angeles"),
    Site(2, 6.0, 20, "456 Energy Avenue", "Power City", "TX", "75001", Coordinate(32.7767, -96.7970),
         "America/Chicago"),
    Site(3, 3.2, 8, "789 Green Way", "Eco Town", "FL", "33101", Coordinate(25.7617, -80.1918),
         "America/New_York"),
    Site(4, 7.8, 26, "321 Renewable Road", "Solar City", "AZ", "85001", Coordinate(33.4484, -112.0740),
         "America/Phoenix"),
    Site(5, 2.1, 6, "654 Clean Lane", "Green Valley", "OR", "97201", Coordinate(45.5152, -122.6784),
         "America/Los_Angeles"),
)  # fmt: skip

# -- US metro areas for the synthetic fleet: city, state, lat, lng, ZIP prefix, weight (solar adoption)
METROS: tuple[tuple[str, str, float, float, str, int], ...] = (
    ("Los Angeles", "CA", 34.05, -118.24, "900", 14),
    ("San Diego", "CA", 32.72, -117.16, "921", 8),
    ("San Jose", "CA", 37.34, -121.89, "951", 7),
    ("Sacramento", "CA", 38.58, -121.49, "958", 6),
    ("Fresno", "CA", 36.74, -119.79, "937", 4),
    ("Phoenix", "AZ", 33.45, -112.07, "850", 8),
    ("Tucson", "AZ", 32.22, -110.97, "857", 3),
    ("Las Vegas", "NV", 36.17, -115.14, "891", 4),
    ("Albuquerque", "NM", 35.08, -106.65, "871", 2),
    ("Salt Lake City", "UT", 40.76, -111.89, "841", 3),
    ("Denver", "CO", 39.74, -104.99, "802", 4),
    ("Dallas", "TX", 32.78, -96.80, "752", 5),
    ("Houston", "TX", 29.76, -95.37, "770", 5),
    ("Austin", "TX", 30.27, -97.74, "787", 4),
    ("San Antonio", "TX", 29.42, -98.49, "782", 3),
    ("Miami", "FL", 25.76, -80.19, "331", 4),
    ("Tampa", "FL", 27.95, -82.46, "336", 4),
    ("Orlando", "FL", 28.54, -81.38, "328", 3),
    ("Atlanta", "GA", 33.75, -84.39, "303", 2),
    ("Charlotte", "NC", 35.23, -80.84, "282", 3),
    ("Raleigh", "NC", 35.78, -78.64, "276", 2),
    ("Washington", "DC", 38.91, -77.04, "200", 2),
    ("Baltimore", "MD", 39.29, -76.61, "212", 2),
    ("Newark", "NJ", 40.74, -74.17, "071", 4),
    ("New York", "NY", 40.71, -74.01, "100", 3),
    ("Boston", "MA", 42.36, -71.06, "021", 4),
    ("Hartford", "CT", 41.76, -72.67, "061", 1),
    ("Philadelphia", "PA", 39.95, -75.17, "191", 2),
    ("Chicago", "IL", 41.88, -87.63, "606", 2),
    ("Minneapolis", "MN", 44.98, -93.27, "554", 1),
    ("Portland", "OR", 45.52, -122.68, "972", 2),
    ("Seattle", "WA", 47.61, -122.33, "981", 1),
    ("Honolulu", "HI", 21.31, -157.86, "968", 2),
)
STREETS = (
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Sunset", "Highland", "Lakeview", "Hillcrest", "Park",
    "Washington", "Lincoln", "Jefferson", "Mesa", "Canyon", "Willow", "Meadow", "Ridge", "Valley", "Sunrise",
)  # fmt: skip
STREET_SUFFIXES = ("Street", "Avenue", "Road", "Lane", "Drive", "Way", "Court", "Boulevard")
PANEL_WATTS = (330, 370, 400, 430, 450)
LOAD_SHAPE = (  # household load by local hour, relative (normalized below to a mean of 1)
    0.55, 0.50, 0.48, 0.47, 0.48, 0.55, 0.75, 0.95, 0.90, 0.80, 0.75, 0.75,
    0.75, 0.75, 0.80, 0.90, 1.05, 1.30, 1.45, 1.45, 1.35, 1.15, 0.90, 0.70,
)  # fmt: skip
_LOAD_MEAN = sum(LOAD_SHAPE) / len(LOAD_SHAPE)


def seed_sites() -> list[Site]:
    """The seed's 5 sample sites."""
    return list(SEED_SITES)


# -- the synthetic fleet -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SiteModel:
    """What the generator needs to know about a site beyond its registry record."""

    site: Site
    region: int  # sites of one region share the day's weather
    usage_ratio: float  # mean load in kW per kW of capacity
    derate: float  # inverter, wiring, soiling and orientation losses (AC kW per kW under 1000 W/m²)


def _site_rng(seed: int, site_id: int) -> random.Random:
    return random.Random(f"redisolar:{seed}:site:{site_id}")


def _synthetic_site(site_id: int, rng: random.Random) -> tuple[Site, int, float]:
    """A site in a (weighted) random US metro area: (site, region, usage ratio)."""
    region = rng.choices(range(len(METROS)), weights=[m[5] for m in METROS])[0]
    city, state, lat, lng, zip_prefix, _ = METROS[region]
    kind = rng.random()
    if kind < 0.88:  # residential rooftop: median ~7 kW
        capacity = min(20.0, max(2.0, rng.lognormvariate(math.log(7.0), 0.35)))
        usage = rng.uniform(0.12, 0.30)
    elif kind < 0.98:  # commercial rooftop or carport
        capacity = math.exp(rng.uniform(math.log(25.0), math.log(250.0)))
        usage = rng.uniform(0.10, 0.25)
    else:  # community or utility scale
        capacity = math.exp(rng.uniform(math.log(500.0), math.log(5000.0)))
        usage = rng.uniform(0.005, 0.02)
    capacity = round(capacity, 1)
    panels = max(1, math.ceil(capacity * 1000 / rng.choice(PANEL_WATTS)))
    street = f"{rng.randint(100, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_SUFFIXES)}"
    coordinate = Coordinate(
        round(lat + rng.uniform(-0.25, 0.25), 4), round(lng + rng.uniform(-0.30, 0.30), 4)
    )
    postal = f"{zip_prefix}{rng.randint(1, 99):02d}"
    site = Site(
        site_id, capacity, panels, street, city, state, postal, coordinate, derived_timezone(coordinate)
    )
    return site, region, usage


def fleet_models(count: int, seed: int) -> list[SiteModel]:
    """``count`` sites: the seed's first (up to 5), then synthetic ones with ids 6, 7, ..."""
    if count < 1:
        raise InvalidInput("The fleet needs at least one site")
    models = [SiteModel(site, len(METROS) + site.id, 0.2, 0.80) for site in SEED_SITES[: min(count, 5)]]
    for site_id in range(len(models) + 1, count + 1):
        rng = _site_rng(seed, site_id)
        site, region, usage = _synthetic_site(site_id, rng)
        models.append(SiteModel(site, region, usage, rng.uniform(0.74, 0.86)))
    return models


# -- the physics: sun, sky, temperature, load ----------------------------------------------------------
def _day_of_year(ms: int) -> float:
    return (ms % (365.2425 * MS_PER_DAY)) / MS_PER_DAY  # close enough to the calendar's, for the sun


def solar_hour(ms: int, lng: float) -> float:
    """Local mean solar time in hours [0, 24) at longitude ``lng`` (solar noon near 12)."""
    return ((ms % MS_PER_DAY) / 3_600_000 + lng / 15.0) % 24.0


def cos_zenith(ms: int, lat: float, lng: float) -> float:
    """Cosine of the sun's zenith angle (negative at night), with the equation of time."""
    doy = _day_of_year(ms)
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    b = 2 * math.pi * (doy - 81) / 364.0
    equation_of_time_h = (9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)) / 60.0
    hour_angle = math.radians(15.0 * (solar_hour(ms, lng) + equation_of_time_h - 12.0))
    phi = math.radians(lat)
    return math.sin(phi) * math.sin(declination) + math.cos(phi) * math.cos(declination) * math.cos(
        hour_angle
    )


def clear_sky_ghi(cos_z: float) -> float:
    """Clear-sky global horizontal irradiance in W/m² (Haurwitz model); 0 when the sun is down."""
    if cos_z <= 0.01:
        return 0.0
    return 1098.0 * cos_z * math.exp(-0.057 / cos_z)


def ambient_temp(ms: int, lat: float, lng: float, clearness: float) -> float:
    """A plausible air temperature (°C): latitude, season, time of day (warmest at 15:00 solar)."""
    doy = _day_of_year(ms)
    mean = 25.0 - 0.6 * (abs(lat) - 25.0)
    seasonal = (4.0 + 0.3 * (abs(lat) - 25.0)) * math.cos(2 * math.pi * (doy - 201) / 365.0)
    if lat < 0:
        seasonal = -seasonal
    diurnal = (3.0 + 4.0 * clearness) * math.cos(2 * math.pi * (solar_hour(ms, lng) - 15.0) / 24.0)
    return mean + seasonal + diurnal


@dataclass
class _Weather:
    """Each (region, local day)'s sky: a clearness index and how much it flickers."""

    seed: int
    _cache: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    def sky(self, region: int, day: int) -> tuple[float, float]:
        key = (region, day)
        if key not in self._cache:
            rng = random.Random(f"redisolar:{self.seed}:weather:{region}:{day}")
            state = rng.random()
            if state < 0.6:  # clear
                self._cache[key] = (rng.uniform(0.90, 1.00), 0.03)
            elif state < 0.9:  # partly cloudy
                self._cache[key] = (rng.uniform(0.50, 0.85), 0.20)
            else:  # overcast
                self._cache[key] = (rng.uniform(0.10, 0.35), 0.10)
        return self._cache[key]


# -- plans: what to load --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplePlan:
    """A fleet and the readings to generate for it: ``per_site`` readings every ``interval_minutes``,
    the newest timed at ``end``."""

    models: tuple[SiteModel, ...]
    end: datetime
    interval_minutes: int
    per_site: int
    profile: Profile
    seed: int
    quiet: tuple[tuple[int, int], ...] = ()
    """(site id, hours): that site's readings stop that many hours before :attr:`end` (the demo's
    silent site, :func:`with_quiet_site`)."""

    @property
    def sites(self) -> list[Site]:
        return [model.site for model in self.models]

    @property
    def total_readings(self) -> int:
        silent = sum(min(self.per_site, hours * 60 // self.interval_minutes) for _, hours in self.quiet)
        return self.per_site * len(self.models) - silent

    @property
    def start(self) -> datetime:
        """The timestamp of the oldest reading."""
        return self.end - timedelta(minutes=self.interval_minutes * (self.per_site - 1))

    @property
    def span_ms(self) -> int:
        """From the oldest reading to the newest, in milliseconds."""
        return (self.per_site - 1) * self.interval_minutes * MS_PER_MINUTE

    def timestamps_ms(self) -> range:
        """Every reading time of a site, oldest first (the same for every site)."""
        step = self.interval_minutes * MS_PER_MINUTE
        end = to_ms(self.end)
        return range(end - (self.per_site - 1) * step, end + 1, step)

    def readings(self) -> Iterator[MeterReading]:
        """Every reading, site by site, oldest first within a site."""
        weather = _Weather(self.seed)
        for model in self.models:
            yield from self.site_readings(model, weather)

    def site_readings(self, model: SiteModel, weather: _Weather | None = None) -> Iterator[MeterReading]:
        """One site's readings, oldest first."""
        rng = random.Random(f"redisolar:{self.seed}:readings:{model.site.id}")
        sky = weather or _Weather(self.seed)
        interval, site_id = self.interval_minutes, model.site.id
        last = to_ms(self.end) - dict(self.quiet).get(site_id, 0) * 3_600_000
        for ms in self.timestamps_ms():
            if ms > last:
                break
            if self.profile == "seed":
                generated, used, temp = _seed_values(model.site, ms, interval, rng)
            else:
                generated, used, temp = _clear_sky_values(model, ms, interval, rng, sky)
            yield MeterReading(site_id, from_ms(ms), generated, used, temp)


def _seed_values(site: Site, ms: int, interval: int, rng: random.Random) -> tuple[float, float, float]:
    """The seed's curve (Step 9), its hour the site's local solar hour; energies scaled to the interval."""
    lng = site.coordinate.lng if site.coordinate is not None else 0.0
    hour_factor = max(0.0, 1 - abs(solar_hour(ms, lng) - 12) / 12)
    scale = interval / 60.0
    generated = site.capacity * 800 * hour_factor * rng.uniform(0.7, 1.3) * scale
    used = site.capacity * 200 * rng.uniform(0.8, 1.2) * scale
    temp = 20 + hour_factor * 15 + rng.uniform(-5, 5)
    return max(0.0, generated), max(0.0, used), temp


def _clear_sky_values(
    model: SiteModel, ms: int, interval: int, rng: random.Random, weather: _Weather
) -> tuple[float, float, float]:
    """Energy over the interval ending at ``ms`` (sun at its middle), load, and air temperature."""
    site = model.site
    lat, lng = (site.coordinate.lat, site.coordinate.lng) if site.coordinate else (35.0, -100.0)
    middle = ms - interval * MS_PER_MINUTE // 2
    local_day = (middle + int(lng * 240_000)) // MS_PER_DAY  # the weather changes at local midnight
    clearness, flicker = weather.sky(model.region, local_day)
    temp = ambient_temp(middle, lat, lng, clearness) + rng.gauss(0.0, 0.8)
    ghi = clear_sky_ghi(cos_zenith(middle, lat, lng))
    generated = 0.0
    if ghi > 0:
        sky = min(1.05, max(0.02, clearness + rng.gauss(0.0, flicker)))
        cell_temp = temp + ghi * sky / 800.0 * 25.0
        heat_loss = max(0.7, 1.0 - 0.004 * (cell_temp - 25.0))
        kw = site.capacity * model.derate * ghi / 1000.0 * sky * heat_loss
        generated = kw * 1000.0 * interval / 60.0
    shape = LOAD_SHAPE[int(solar_hour(middle, lng))] / _LOAD_MEAN
    used = site.capacity * model.usage_ratio * shape * rng.uniform(0.8, 1.2) * 1000.0 * interval / 60.0
    return round(generated, 3), round(used, 3), round(temp, 2)


def plan_sample_data(
    sites: int = 5,
    days: float = 7,
    interval_minutes: int = 60,
    *,
    profile: str = "auto",
    seed: int | None = None,
    now: datetime | None = None,
) -> SamplePlan:
    """What ``redisolar load`` loads: ``sites`` sites, ``days`` days of readings every ``interval_minutes``.

    The newest reading is timed at the latest multiple of the interval (since the epoch, UTC) not after
    ``now``, e.g. the start of the current hour for hourly readings, so none lies in the future.
    ``profile`` "auto" is the seed's curve for the seed's fleet (up to 5 sites) and the clear-sky
    model for a larger one.
    """
    if profile not in PROFILES:
        raise InvalidInput(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if not 1 <= interval_minutes <= 1440:
        raise InvalidInput("The interval must be between 1 and 1440 minutes")
    if not 0 < days <= 3660:
        raise InvalidInput("days must be more than 0 and at most 3660")
    per_site = int(days * 1440 // interval_minutes)
    if per_site < 1:
        raise InvalidInput(f"{days:g} days hold no reading at a {interval_minutes}-minute interval")
    step = interval_minutes * MS_PER_MINUTE
    end = from_ms(to_ms(now or utcnow()) // step * step)
    chosen: Profile = "seed" if sites <= len(SEED_SITES) else "clear-sky"
    if profile != "auto":
        chosen = "seed" if profile == "seed" else "clear-sky"
    seed = seed if seed is not None else secrets.randbits(32)
    models = tuple(fleet_models(sites, seed))
    return SamplePlan(models, end, interval_minutes, per_site, chosen, seed)


DEMO_QUIET_SITE = (5, 6)
"""The demo's silent site: the seed's site 5 stops reporting 6 hours before now, so the demo shows an
offline alert (:mod:`redisolar.alerts`) from its first evaluation."""


def with_quiet_site(plan: SamplePlan, quiet: tuple[int, int] = DEMO_QUIET_SITE) -> SamplePlan:
    """``plan`` with one site's readings stopping ``quiet[1]`` hours before its end (the demo's)."""
    return replace(plan, quiet=(quiet,))


# -- loading --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_plan` did."""

    sites: int
    readings: int
    seconds: float

    @property
    def readings_per_second(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


def batched(items: Iterable[MeterReading], size: int) -> Iterator[list[MeterReading]]:
    """Lists of up to ``size`` items."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def check_retention(plan: SamplePlan, retention_ms: int) -> None:
    """Raise :class:`InvalidInput` if the plan's readings span more than the retention window."""
    if retention_ms and plan.span_ms > retention_ms:
        raise InvalidInput(
            f"The readings would span {plan.span_ms / MS_PER_DAY:g} days, more than the retention "
            f"window of {retention_ms / MS_PER_DAY:g} days: load fewer days"
        )


def load_plan(
    services: Services,
    plan: SamplePlan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Store the plan's sites, then its readings in batches through the ingest, then reconcile the
    leaderboards once. ``progress`` is called with the size of each stored batch.

    Existing sites with the same ids are replaced; nothing else is deleted.
    """
    check_retention(plan, services.timeseries.default_retention)
    started = time.perf_counter()
    services.sites.insert_many(*plan.sites)
    stored = 0
    for batch in batched(plan.readings(), batch_size):
        stored += ingest_readings(services, batch)
        if progress is not None:
            progress(len(batch))
    services.updater.update_all_leaderboards()
    return LoadReport(len(plan.models), stored, time.perf_counter() - started)


__all__ = [
    "PROFILES",
    "SEED_SITES",
    "LoadReport",
    "SamplePlan",
    "SiteModel",
    "check_retention",
    "fleet_models",
    "load_plan",
    "plan_sample_data",
    "seed_sites",
    "with_quiet_site",
]

"""A site's data: its newest readings, one metric over a range (raw or in buckets), and its analytics
(totals, extremes, capacity factor) over a range; each with the site's IANA ``timezone`` (its hash's,
else ``DEFAULT_TIMEZONE``), read in the same round trip as the data (the site hash shares the
``{site:ID}`` slot with the series).

Each use case takes ``known``: whether the caller already knows that the site exists (the API's key
check reads it in its own round trip), or None to have it checked here. Either way the data read also
reads the site hash (:class:`~redisolar.dao.timeseries.base.SiteRead`), which says whether the site
exists now (``SiteNotFound`` if not) without a round trip of its own.

Beyond the raw window (``RETENTION_DAYS`` back from the site's newest reading) only the hourly and
local-daily rollups remain: raw readings there, and buckets finer than an hour, are a 400 that names
the window's start; hour-or-longer buckets and analytics are answered from the rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from redisolar.dao.timeseries.base import SiteRead
from redisolar.dao.timeseries_dao import beyond_window_error
from redisolar.errors import SiteNotFound
from redisolar.models.site import MetricType, SiteAnalytics, TimeSeriesData
from redisolar.timeutil import to_ms

if TYPE_CHECKING:
    from redisolar.services import Services

T = TypeVar("T")


@dataclass(frozen=True)
class AboutSite(Generic[T]):
    """An answer about a site and the site's IANA zone."""

    value: T
    timezone: str


def require_site(services: Services, site_id: int, known: bool | None = None) -> None:
    """Raise ``SiteNotFound`` unless the site exists (``known``: already known, else asked)."""
    if not (services.sites.exists(site_id) if known is None else known):
        raise SiteNotFound(site_id)


def _about(services: Services, site_id: int, site: SiteRead, known: bool | None, value: T) -> AboutSite[T]:
    """``value`` with the site's zone, once the site hash read with the data says the site exists
    (``known`` only when nothing read it)."""
    if not (site.exists if site.read else known):
        raise SiteNotFound(site_id)
    return AboutSite(value, site.timezone or services.settings.default_timezone)


def latest_readings(
    services: Services, site_id: int, *, known: bool | None = None
) -> AboutSite[dict[MetricType, TimeSeriesData]]:
    """The newest reading of every metric of a site (metrics without readings are left out), with
    its zone: one round trip."""
    if known is False:
        raise SiteNotFound(site_id)
    site = SiteRead()
    latest = services.timeseries.get_latest_readings(site_id, site=site)
    return _about(services, site_id, site, known, latest)


def series(
    services: Services,
    site_id: int,
    metric: MetricType,
    start: datetime,
    end: datetime,
    aggregation: str = "raw",
    bucket_ms: int = 3_600_000,
    *,
    known: bool | None = None,
) -> AboutSite[list[TimeSeriesData]]:
    """One metric of a site over ``[start, end)``: every reading (``raw``), or ``aggregation`` in
    buckets of ``bucket_ms`` aligned to the epoch; with its zone. A raw range that starts before the
    raw window is an ``InvalidQuery`` (the readings there are gone; hourly buckets work)."""
    if known is False:
        raise SiteNotFound(site_id)
    site = SiteRead()
    timeseries = services.timeseries
    if aggregation == "raw":
        window = timeseries.raw_window_start(site_id, start)
        if window is not None:
            raise beyond_window_error(
                to_ms(window),
                "raw readings are kept only inside it; use an aggregation with hourly or daily "
                "buckets (bucket_size a whole number of hours) beyond it",
                {"start": start.isoformat()},
            )
        points = timeseries.get_readings_range(site_id, metric, start, end, site=site)
    else:
        points = timeseries.get_aggregated_data(
            site_id, metric, start, end, bucket_ms, aggregation, site=site
        )
    return _about(services, site_id, site, known, points)


def site_analytics(
    services: Services, site_id: int, start: datetime, end: datetime, *, known: bool | None = None
) -> AboutSite[SiteAnalytics | None]:
    """A site's analytics over ``[start, end)`` (None when the range holds no reading), with its
    zone; beyond the raw window from the hourly rollups, the same figures."""
    if known is False:
        raise SiteNotFound(site_id)
    site = SiteRead()
    result = services.timeseries.get_site_analytics(site_id, start, end, site=site)
    return _about(services, site_id, site, known, result)

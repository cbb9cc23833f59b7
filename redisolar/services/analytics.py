"""A site's data: its newest readings, one metric over a range (raw or in buckets), and its analytics
(totals, extremes, capacity factor) over a range.

Each use case takes ``known``: whether the caller already knows that the site exists (the API's key
check reads it in its own round trip), or None to have it checked here (``SiteNotFound``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from redisolar.errors import SiteNotFound
from redisolar.models.site import MetricType, SiteAnalytics, TimeSeriesData

if TYPE_CHECKING:
    from redisolar.services import Services


def require_site(services: Services, site_id: int, known: bool | None = None) -> None:
    """Raise ``SiteNotFound`` unless the site exists (``known``: already known, else asked)."""
    if not (services.sites.exists(site_id) if known is None else known):
        raise SiteNotFound(site_id)


def latest_readings(
    services: Services, site_id: int, *, known: bool | None = None
) -> dict[MetricType, TimeSeriesData]:
    """The newest reading of every metric of a site (metrics without readings are left out)."""
    require_site(services, site_id, known)
    return services.timeseries.get_latest_readings(site_id)


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
) -> list[TimeSeriesData]:
    """One metric of a site over ``[start, end)``: every reading (``raw``), or ``aggregation`` in
    buckets of ``bucket_ms`` aligned to the epoch."""
    require_site(services, site_id, known)
    if aggregation == "raw":
        return services.timeseries.get_readings_range(site_id, metric, start, end)
    return services.timeseries.get_aggregated_data(site_id, metric, start, end, bucket_ms, aggregation)


def site_analytics(
    services: Services, site_id: int, start: datetime, end: datetime, *, known: bool | None = None
) -> SiteAnalytics | None:
    """A site's analytics over ``[start, end)``, or None when the range holds no reading."""
    require_site(services, site_id, known)
    return services.timeseries.get_site_analytics(site_id, start, end)

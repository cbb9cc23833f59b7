"""Listing sites without reading the whole fleet: pages by id, and the sites of a map view.

The reads live in :mod:`redisolar.dao.sites.pages` (bounded by the page, whatever the fleet size);
these use cases are what the API's ``GET /api/sites/`` and ``GET /api/sites/map`` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redisolar.dao.sites import pages
from redisolar.dao.sites.pages import DEFAULT_MAP_LIMIT, DEFAULT_PAGE, WORLD, BBox, MapView, SitePage

if TYPE_CHECKING:
    from redisolar.services import Services

__all__ = ["WORLD", "MapView", "SitePage", "list_sites", "map_sites"]


def list_sites(
    services: Services, *, limit: int = DEFAULT_PAGE, cursor: int | None = None, offset: int = 0
) -> SitePage:
    """One page of sites by ascending id: after the site ``cursor`` (None: from the first), skipping
    ``offset``, at most ``limit``; with the cursor of the next page (None on the last)."""
    return pages.site_page(services.redis, services.keys, limit=limit, cursor=cursor, offset=offset)


def map_sites(services: Services, bbox: BBox = WORLD, limit: int = DEFAULT_MAP_LIMIT) -> MapView:
    """Up to ``limit`` sites inside ``bbox`` (west, south, east, north), spread over it, and whether
    the view holds more (see :func:`redisolar.dao.sites.pages.map_view`)."""
    return pages.map_view(services.redis, services.keys, bbox, limit)

"""The seed's import path of the sites DAO; the code lives in :mod:`redisolar.dao.sites`."""

from redisolar.dao.sites import (
    GEO_MAX_LAT,
    MAX_LIMIT,
    SITE_FIELDS,
    SearchMode,
    SearchResult,
    SiteDaoRedis,
    site_from_row,
)

__all__ = [
    "GEO_MAX_LAT",
    "MAX_LIMIT",
    "SITE_FIELDS",
    "SearchMode",
    "SearchResult",
    "SiteDaoRedis",
    "site_from_row",
]

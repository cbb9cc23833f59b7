"""Site search arguments (their validation and normalization, in one place) and its result.

This module is the authority on what a search accepts. :func:`parse_query` checks every argument
before either search path touches Redis and raises :class:`InvalidQuery` (or :class:`InvalidInput`
for a bad site id) with a message meant for the caller. Direct callers of the DAO (the CLI, tasks,
benchmarks, tests) rely on it alone.

The HTTP API's ``SearchArgs`` schema (``redisolar/api/schemas.py``) validates the same query string
earlier, so that the OpenAPI document shows the bounds and a bad request is answered with the API's
usual field errors. It is a front for this module, not a second authority: its bounds must be the
constants below (``GEO_MAX_LAT``, ``MAX_RADIUS_KM``, ``MAX_LIMIT``, ``MAX_OFFSET``) or stricter, and
whatever it lets through is checked here again. ``tests/test_site_dao.py`` checks that the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites.hashes import MIN_TERM_LENGTH, normalized
from redisolar.errors import InvalidInput, InvalidQuery
from redisolar.models.site import Site, check_site_id, check_text

GEO_MAX_LAT = 85.05112878
"""Redis GEO (and RediSearch GEO) cannot index latitudes beyond ±this."""

MAX_LIMIT = 1000
"""Largest page."""

MAX_WINDOW = 1_000_000
"""Largest ``offset + limit``: RediSearch's MAXSEARCHRESULTS default."""

MAX_OFFSET = MAX_WINDOW - MAX_LIMIT
"""Largest offset that any page size allows (a smaller page allows up to ``MAX_WINDOW - limit``)."""

MAX_RADIUS_KM = 20_100.0
"""Beyond half the Earth's circumference: larger radii change nothing (they are clamped to it)."""


@dataclass(frozen=True)
class SearchResult:
    """One page of search results and the number of all matches (before limit and offset)."""

    sites: list[Site]
    total: int


@dataclass(frozen=True)
class SearchQuery:
    """Validated, normalized search arguments."""

    terms: tuple[str, ...]
    """Case-folded terms, each a prefix of a word that must occur."""
    exact: tuple[tuple[str, str, str], ...]
    """(hash index field, index set key, normalized value) for ``state``, ``city``, ``postal_code``."""
    min_capacity: float | None
    max_capacity: float | None
    geo: tuple[float, float, float] | None
    """lat, lng, radius_km."""
    limit: int
    offset: int

    @property
    def capacity_bounds(self) -> tuple[str, str] | None:
        """The capacity range as Redis score bounds (``"-inf"``/``"+inf"`` when open), None without one."""
        if self.min_capacity is None and self.max_capacity is None:
            return None
        low = "-inf" if self.min_capacity is None else repr(self.min_capacity)
        high = "+inf" if self.max_capacity is None else repr(self.max_capacity)
        return low, high


def parse_query(
    keys: KeyManager,
    *,
    q: object = None,
    state: object = None,
    city: object = None,
    postal_code: object = None,
    min_capacity: object = None,
    max_capacity: object = None,
    lat: object = None,
    lng: object = None,
    radius_km: object = None,
    limit: object = 100,
    offset: object = 0,
) -> SearchQuery:
    """The :class:`SearchQuery` for these arguments (see :mod:`redisolar.dao.sites` for their meaning).

    Raises:
        InvalidQuery: an argument is of the wrong type, out of bounds, or inconsistent with another.
    """
    exact = []
    for field, name, value, key_of in (
        ("idx_state", "state", state, keys.site_state_key),
        ("idx_city", "city", city, keys.site_city_key),
        ("idx_postal", "postal_code", postal_code, keys.site_postal_key),
    ):
        if value is not None:
            checked = _string(name, value)
            exact.append((field, key_of(checked), normalized(key_of, checked)))
    low, high = _capacity_range(min_capacity, max_capacity)
    limit_i = _integer("limit", limit, 1, MAX_LIMIT)
    offset_i = _integer("offset", offset, 0, MAX_WINDOW - limit_i)
    return SearchQuery(
        terms=() if q is None else _terms(q),
        exact=tuple(exact),
        min_capacity=low,
        max_capacity=high,
        geo=_geo(lat, lng, radius_km),
        limit=limit_i,
        offset=offset_i,
    )


def checked_id(site_id: object) -> int:
    """``site_id`` if it is a valid site id, else :class:`InvalidInput`."""
    try:
        return check_site_id(site_id)
    except ValueError as e:
        raise InvalidInput(e.args[0]) from None


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidQuery(f"{name} must be a finite number")
    return float(value)


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQuery(f"{name} must be an integer between {low} and {high}")
    return value


def _string(name: str, value: object) -> str:
    try:
        return check_text(name, value)
    except ValueError as e:
        raise InvalidQuery(e.args[0]) from None


def _terms(q: object) -> tuple[str, ...]:
    terms = _string("q", q).split()
    short = [t for t in terms if len(t) < MIN_TERM_LENGTH]
    if short:
        raise InvalidQuery(f"Each search term must have at least {MIN_TERM_LENGTH} characters: {short[0]!r}")
    return tuple(t.casefold() for t in terms)


def _geo(lat: object, lng: object, radius_km: object) -> tuple[float, float, float] | None:
    given = [v is not None for v in (lat, lng, radius_km)]
    if not any(given):
        return None
    if not all(given):
        raise InvalidQuery("lat, lng and radius_km must be given together")
    lat_f, lng_f, radius = _number("lat", lat), _number("lng", lng), _number("radius_km", radius_km)
    if not -GEO_MAX_LAT <= lat_f <= GEO_MAX_LAT:
        raise InvalidQuery(f"lat must be between -{GEO_MAX_LAT} and {GEO_MAX_LAT}")
    if not -180 <= lng_f <= 180:
        raise InvalidQuery("lng must be between -180 and 180")
    if radius <= 0:
        raise InvalidQuery("radius_km must be positive")
    return lat_f, lng_f, min(radius, MAX_RADIUS_KM)


def _capacity_range(low: object, high: object) -> tuple[float | None, float | None]:
    low_f = None if low is None else _number("min_capacity", low)
    high_f = None if high is None else _number("max_capacity", high)
    if low_f is not None and high_f is not None and low_f > high_f:
        raise InvalidQuery("min_capacity must not be greater than max_capacity")
    return low_f, high_f

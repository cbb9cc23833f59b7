"""Sites a page at a time, and the sites of a map view: reads whose cost is bounded by the page,
whatever the size of the fleet (no request path costs O(fleet) work in one Redis call).

Decisions:

- **Pages walk the id index** (``keys.site_ids_key()``, a sorted set scored by the id): a page is one
  ``ZRANGE`` of ``limit + 1`` ids (the extra one says whether more follow), then one pipeline of
  ``HMGET`` of the page's site hashes (on a Redis Cluster redis-py's cluster pipeline sends each node
  its share). Two round trips, O(log N + limit) in Redis.
- **The cursor is the last id read from the index**: the next page is ``ZRANGE BYSCORE (cursor +inf
  LIMIT 0 limit+1``. It is stable under concurrent writes (no site is skipped or repeated, a site
  created behind the cursor is not seen), and an id whose hash is missing (a write or a delete under
  way; see :mod:`redisolar.dao.sites.store`) is left out of the page without ending the walk.
- **An offset is a rank**, not a skip: ``ZRANGE key offset offset+limit`` costs O(log N + limit)
  however deep (``ZRANGE ... BYSCORE LIMIT offset`` would walk ``offset`` members). With a cursor too,
  the cursor's rank comes first (``ZCOUNT -inf cursor``, one more round trip); a site created or
  deleted meanwhile below the cursor shifts that page by one, as offsets always do. Follow cursors for
  a stable walk.
- **A map view** (:func:`map_view`) reads only the geo set and the capacity board. The view is
  covered by at most ``MAP_MAX_CELLS`` cells of the geo set's own grid (:mod:`.geocells`: a cell is
  one range of scores), and each cell gives up to its share of the limit with ``ZRANGE BYSCORE ...
  LIMIT``, all in one pipeline; then one ``ZMSCORE`` for the capacities. The cost is bounded by the
  limit, not by the sites in the view, and a truncated view is spread over the map (not the first
  sites of one corner). Both keys share the ``{sites}`` hash tag, so each round trip goes to one
  node. Two round trips, three when a second pass fills the view from its busiest cells.
- **Truncated** means the view may hold more sites than were returned: some cell stopped at its
  count, or the cells held more than the limit. The cells on the view's edges reach past it, and
  their sites outside the view count against the cell's share, so a view holding just under the limit
  may be called truncated; never the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites import geocells
from redisolar.dao.sites.geocells import BBox, Cell
from redisolar.dao.sites.hashes import SITE_FIELDS, site_from_row, text
from redisolar.dao.sites.query import GEO_MAX_LAT, SearchResult
from redisolar.errors import InvalidQuery
from redisolar.models.site import MAX_SITE_ID, Site

DEFAULT_PAGE = 100
"""Sites per page by default: a small fleet (the sample's 5 sites) sees every site on the first page."""

MAX_PAGE = 1000
"""Largest page (about 200 kB of JSON)."""

DEFAULT_MAP_LIMIT = 500
"""Sites per map view by default: about 30 kB of JSON, and as many markers as an SVG map can show
legibly."""

MAX_MAP_LIMIT = 2000
"""Largest map view."""

MAP_MAX_CELLS = 64
"""A map view reads at most this many cells of the geo set (at least 4 at the finest step that fits)."""

MAP_CELL_SHARE = 8
"""A cell's share of the limit is ``1 / MAP_CELL_SHARE`` of it: the first pass asks each cell for its
share (plus one, to know whether it holds more), so Redis returns at most ``MAP_MAX_CELLS /
MAP_CELL_SHARE`` times the limit (8x). When some cells hold more than their share and the others left
room, a second pass asks those cells for the room left: a view whose sites sit in a few cells still
shows up to the limit."""

COORD_DIGITS = 5
"""Decimals of a map site's coordinates (about a metre): the geo set holds them to about half a metre
(a 52-bit geohash), so more digits would be noise."""

WORLD = (-180.0, -GEO_MAX_LAT, 180.0, GEO_MAX_LAT)
"""The whole indexable world as a bbox (west, south, east, north)."""


@dataclass(frozen=True)
class SitePage:
    """One page of sites by ascending id, and the cursor of the next page (None on the last)."""

    sites: list[Site]
    next_cursor: int | None


@dataclass(frozen=True)
class MapSite:
    """What a map marker needs: the site's id, position and capacity (kW; None while the site is
    being written)."""

    id: int
    lat: float
    lng: float
    capacity: float | None


@dataclass(frozen=True)
class MapView:
    """The sites of a map view, by id; ``truncated`` when the view holds more than were returned."""

    sites: list[MapSite]
    truncated: bool


# -- pages -----------------------------------------------------------------------------------------
def site_page(
    client: redis.Redis,
    keys: KeyManager,
    *,
    limit: int = DEFAULT_PAGE,
    cursor: int | None = None,
    offset: int = 0,
) -> SitePage:
    """The sites after ``cursor`` (an id; None: from the first), skipping ``offset`` of them, at most
    ``limit`` (two or three round trips). Raises :class:`InvalidQuery` for a bad argument."""
    ids, more = id_page(client, keys, limit=limit, cursor=cursor, offset=offset)
    sites = [site for site in read_sites(client, keys, ids) if site is not None]
    return SitePage(sites, ids[-1] if more else None)


def id_page(
    client: redis.Redis, keys: KeyManager, *, limit: int, cursor: int | None = None, offset: int = 0
) -> tuple[list[int], bool]:
    """Up to ``limit`` ids after ``cursor`` skipping ``offset``, ascending, and whether more follow."""
    _check_int("limit", limit, 1, MAX_PAGE)
    _check_int("offset", offset, 0, MAX_SITE_ID)
    if cursor is not None:
        _check_int("cursor", cursor, 0, MAX_SITE_ID)
    key = keys.site_ids_key()
    if cursor is None or offset:
        start = offset + (int(client.zcount(key, "-inf", cursor)) if cursor is not None else 0)
        members = client.zrange(key, start, start + limit)
    else:
        members = client.zrange(key, f"({cursor}", "+inf", byscore=True, offset=0, num=limit + 1)
    ids = [int(text(member)) for member in members]
    return ids[:limit], len(ids) > limit


def read_sites(client: redis.Redis, keys: KeyManager, ids: Sequence[int]) -> list[Site | None]:
    """The sites with ``ids``, in order, None for a missing hash (one pipeline; none without ids)."""
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for site_id in ids:
        pipe.hmget(keys.site_key(site_id), list(SITE_FIELDS))
    return [site_from_row(row) for row in pipe.execute()]


def unfiltered_search(client: redis.Redis, keys: KeyManager, *, limit: int, offset: int) -> SearchResult:
    """A search without filters: the page ``[offset, offset + limit)`` of every site by id, and their
    number (``ZRANGE`` by rank and ``ZCARD``, one round trip to the index's node, then the hashes)."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.site_ids_key(), offset, offset + limit - 1)
    pipe.zcard(keys.site_ids_key())
    members, total = pipe.execute()
    sites = read_sites(client, keys, [int(text(member)) for member in members])
    return SearchResult([site for site in sites if site is not None], int(total))


# -- map views -------------------------------------------------------------------------------------
def map_view(
    client: redis.Redis, keys: KeyManager, bbox: BBox = WORLD, limit: int = DEFAULT_MAP_LIMIT
) -> MapView:
    """Up to ``limit`` sites inside ``bbox`` (west, south, east, north; edges included), spread over
    the view, by id (two or three round trips). Raises :class:`InvalidQuery` for a bad argument."""
    check_bbox(bbox)
    _check_int("limit", limit, 1, MAX_MAP_LIMIT)
    cells = geocells.cells(bbox, MAP_MAX_CELLS)
    share = math.ceil(limit / MAP_CELL_SHARE)
    replies = _read_cells(client, keys, cells, share + 1)
    found = [_inside(reply, bbox) for reply in replies]
    full = [i for i, reply in enumerate(replies) if len(reply) > share]
    if full and sum(map(len, found)) < limit:
        # Some cells hold more than their share, and the others left room: fill it from those cells.
        room = limit - sum(len(found[i]) for i in range(len(cells)) if i not in full)
        again = _read_cells(client, keys, [cells[i] for i in full], room + 1)
        for i, reply in zip(full, again, strict=True):
            replies[i], found[i] = reply, _inside(reply, bbox)
        full = [i for i in full if len(replies[i]) > room]
    truncated = bool(full) or sum(map(len, found)) > limit
    return MapView(_with_capacities(client, keys, _round_robin(found, limit)), truncated)


def _read_cells(client: redis.Redis, keys: KeyManager, cells: list[Cell], count: int) -> list[Any]:
    """Up to ``count`` members of each cell, with their scores (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for low, high in cells:
        pipe.zrange(keys.site_geo_key(), low, f"({high}", byscore=True, offset=0, num=count, withscores=True)
    return list(pipe.execute())


def check_bbox(bbox: Sequence[float]) -> None:
    """Raise :class:`InvalidQuery` unless ``bbox`` is ``west, south, east, north`` with ``-180 <= west
    < east <= 180`` and ``-GEO_MAX_LAT <= south < north <= GEO_MAX_LAT`` (a view across the
    antimeridian is two requests)."""
    if len(bbox) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox):
        raise InvalidQuery("bbox must be four finite numbers: west, south, east, north")
    west, south, east, north = bbox
    if not -180 <= west < east <= 180:
        raise InvalidQuery("bbox longitudes must satisfy -180 <= west < east <= 180")
    if not -GEO_MAX_LAT <= south < north <= GEO_MAX_LAT:
        raise InvalidQuery(f"bbox latitudes must satisfy -{GEO_MAX_LAT} <= south < north <= {GEO_MAX_LAT}")


def _inside(reply: list[Any], bbox: BBox) -> list[tuple[int, float, float]]:
    """The ``(id, lng, lat)`` of a cell's members that lie in the view (edges included), by id.

    Positions are rounded to ``COORD_DIGITS`` before the test, so that a site stored exactly on an
    edge (the geo set keeps it within half a metre) is inside, as the coordinates returned say.
    """
    west, south, east, north = bbox
    found = []
    for member, score in reply:
        lng, lat = (round(v, COORD_DIGITS) for v in geocells.position(score))
        if west <= lng <= east and south <= lat <= north:
            found.append((int(text(member)), lng, lat))
    return sorted(found)


def _round_robin(cells: list[list[tuple[int, float, float]]], limit: int) -> list[tuple[int, float, float]]:
    """Up to ``limit`` sites taken from the cells in turn (each cell's by id), so that a truncated
    view is spread over the map; the result by id."""
    chosen: list[tuple[int, float, float]] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(cell) for cell in cells):
        chosen.extend(cell[depth] for cell in cells if depth < len(cell))
        depth += 1
    return sorted(chosen[:limit])


def _with_capacities(
    client: redis.Redis, keys: KeyManager, found: list[tuple[int, float, float]]
) -> list[MapSite]:
    if not found:
        return []
    members = [keys.member(site_id) for site_id, _, _ in found]
    scores = client.zmscore(keys.capacity_leaderboard_key(), members)
    return [
        MapSite(site_id, lat, lng, None if score is None else float(score))
        for (site_id, lng, lat), score in zip(found, scores, strict=True)
    ]


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQuery(f"{name} must be an integer between {low} and {high}")

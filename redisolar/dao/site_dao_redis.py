"""Sites in Redis: one hash per site, the indexes that find them, and search.

Keys (names from :class:`~redisolar.dao.key_manager.KeyManager`):

- ``site:{site:ID}`` (hash): ``id``, ``capacity``, ``panels``, ``address``, ``city``, ``state``,
  ``postal_code``; with a coordinate also ``lat``, ``lng`` and ``location`` (``"lng,lat"``, for a
  RediSearch GEO field). Numbers are written with ``repr`` so they read back exactly. The ``idx_*``
  fields exist only for search: ``idx_state``, ``idx_city``, ``idx_postal`` hold the values normalized
  as in the index set names below, ``idx_prefixes`` every prefix (2+ characters) of every word of the
  address and the city, separated by ``TAG_SEPARATOR``. RediSearch indexes these as exact TAGs, not its
  own TEXT analysis, because that differs from the semantics below: it lower-cases ASCII only, keeps
  ``_``, ``/`` and non-ASCII punctuation inside words, and silently stops a prefix query after 200
  expansions (MAXPREFIXEXPANSIONS), which would drop matches in a large fleet.
- ``sites:ids`` (sorted set, score = id), ``sites:state:STATE``, ``sites:city:CITY``,
  ``sites:postal:CODE`` (sets of ids), ``sites:geo`` (geo set of ids, only sites with a coordinate), and
  the capacity leaderboard (sorted set, member ``site:ID``, score = capacity in kW).

Every write keeps all of them in step with the hash, atomically, in one Lua script per site
(``sites_upsert.lua``, ``sites_delete.lua``). Which index sets a site must leave depends on what its
hash holds; the caller passes the keys of the values it believes are stored and the script checks that
belief before writing (compare-and-set), so there is no read-then-write race. A new site costs one
round trip, a changed one two. The index keys are shared by all sites, so the sites DAO needs a
standalone server (not a Redis Cluster).

Search (:meth:`SiteDaoRedis.search`) has two paths with the same semantics:

- ``redisearch``: one ``FT.SEARCH`` (with a geo filter ``FT.AGGREGATE``, to sort by distance) over an
  index of the site hashes, created on first use;
- ``core``: ``SINTER`` of the index sets, ``ZRANGEBYSCORE`` on the capacity leaderboard, ``GEOSEARCH``,
  then the text terms checked against the candidates' ``idx_prefixes``: at most three round trips.

Filters AND together. ``state`` and ``postal_code`` match the whole value after stripping and
upper-casing, ``city`` after stripping and lower-casing (KeyManager's normalization). Capacity bounds
are inclusive. ``lat``, ``lng`` and ``radius_km`` keep the sites within that distance as Redis computes
it (haversine on a 52-bit geohash: a site within about a metre of the circle may fall either way).
``q`` holds whitespace-separated terms of 2+ characters; each must be a prefix of a word of the address
or the city after ``str.casefold``, words being the runs of letters and digits (so a term with
punctuation matches nothing). Results are sorted by id, or with a geo filter by distance, then id
(distances less than a metre apart may order differently on the two paths).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from redisolar.dao.board_sums import board_sum
from redisolar.dao.key_manager import KeyManager, key_manager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.errors import (
    BackendUnavailable,
    InvalidInput,
    InvalidQuery,
    SiteAlreadyExists,
    SiteNotFound,
)
from redisolar.models.site import Coordinate, Site, check_site_id, check_text

log = logging.getLogger(__name__)

SearchMode = Literal["auto", "redisearch", "core"]

SITE_FIELDS = ("id", "capacity", "panels", "address", "city", "state", "postal_code", "lat", "lng")
"""The hash fields a :class:`Site` is read from, in the order the reads return them."""

GEO_MAX_LAT = 85.05112878  # Redis GEO (and RediSearch GEO) cannot index latitudes beyond this
MAX_LIMIT = 1000
MAX_WINDOW = 1_000_000  # offset + limit: RediSearch's MAXSEARCHRESULTS default
MAX_RADIUS_KM = 20_100.0  # beyond half the Earth's circumference: larger radii change nothing
MIN_TERM_LENGTH = 2  # shorter terms would match nearly everything (and bloat idx_prefixes)
WRITE_ATTEMPTS = 100  # each retry carries the values that beat it, so contention ends quickly
BATCH_SIZE = 5000
INDEX_BUILD_TIMEOUT = 60.0
TAG_SEPARATOR = "\x1f"  # a character no site text may contain (control characters are rejected)
INDEX_ATTRIBUTES = {
    ("idx_prefixes", "idx_prefixes"),
    ("idx_state", "idx_state"),
    ("idx_city", "idx_city"),
    ("idx_postal", "idx_postal"),
    ("capacity", "capacity_num"),  # aliased: RETURN/LOAD of an indexed name would round the number
    ("id", "id_num"),
    ("location", "location"),
}


@dataclass(frozen=True)
class SearchResult:
    """One page of search results and the number of all matches (before limit and offset)."""

    sites: list[Site]
    total: int


@dataclass(frozen=True)
class _Query:
    """Validated, normalized search arguments."""

    terms: tuple[str, ...]
    exact: tuple[tuple[str, str, str], ...]  # (index field, index set key, normalized value)
    min_capacity: float | None
    max_capacity: float | None
    geo: tuple[float, float, float] | None  # lat, lng, radius_km
    limit: int
    offset: int


Stored = tuple[str, str, str] | None
"""The state, city and postal code a site hash holds, or None when there is no hash."""


# -- conversions ---------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _decoded(value: Any) -> Any:
    """``value`` with every bytes object (also inside lists and dicts) decoded as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {_decoded(k): _decoded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decoded(v) for v in value]
    return value


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _site_from_fields(fields: Mapping[str, Any]) -> Site | None:
    """The site in ``fields`` (hash field -> value; missing fields None or absent), None without an id."""
    values = {name: _text(v) for name, v in fields.items() if v is not None}
    if "id" not in values:
        return None
    coordinate = None
    if "lat" in values and "lng" in values:
        coordinate = Coordinate(float(values["lat"]), float(values["lng"]))
    return Site(
        id=int(values["id"]),
        capacity=float(values["capacity"]),
        panels=int(values["panels"]),
        address=values["address"],
        city=values["city"],
        state=values["state"],
        postal_code=values["postal_code"],
        coordinate=coordinate,
    )


def _site_from_row(row: Sequence[Any]) -> Site | None:
    return _site_from_fields(dict(zip(SITE_FIELDS, row, strict=True)))


def words(text: str) -> list[str]:
    """The words of ``text`` as search sees them: runs of letters and digits, case-folded."""
    return [w.casefold() for w in "".join(c if c.isalnum() else " " for c in text).split()]


def word_prefixes(*texts: str) -> list[str]:
    """Every prefix of at least ``MIN_TERM_LENGTH`` characters of every word of ``texts``, sorted."""
    found = {w[:n] for text in texts for w in words(text) for n in range(MIN_TERM_LENGTH, len(w) + 1)}
    return sorted(found)


def _escape(value: str) -> str:
    """``value`` with every ASCII character other than a letter or digit escaped for RediSearch."""
    return re.sub(r"([\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f])", r"\\\1", value)


def _suffix(key_of: Callable[[str], str], value: str) -> str:
    """The normalized ``value`` as the index set key name ``key_of(value)`` holds it."""
    return key_of(value)[len(key_of("")) :]


# -- validation ----------------------------------------------------------------------------------
def _checked_id(site_id: object) -> int:
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


# -- the DAO -------------------------------------------------------------------------------------
class SiteDaoRedis:
    """Sites: CRUD, totals and search.

    ``search`` chooses the search path: ``"redisearch"``, ``"core"``, or ``"auto"`` (RediSearch when
    it can serve this client: the server has it and the client uses database 0, the only one RediSearch
    indexes; probed once, on the first search). An explicit ``"redisearch"`` that cannot work answers
    :class:`BackendUnavailable` (``redisolar serve`` refuses to start, see :meth:`redisearch_problem`).
    The client may decode responses or not and speak RESP2 or RESP3.
    """

    def __init__(
        self, client: redis.Redis, *, keys: KeyManager | None = None, search: SearchMode = "auto"
    ) -> None:
        if search not in ("auto", "redisearch", "core"):
            raise ValueError(f"search must be 'auto', 'redisearch' or 'core', got {search!r}")
        self.redis = client
        self.keys = keys or key_manager
        self._backend: str | None = None if search == "auto" else search
        self._auto = search == "auto"
        self._index_ready = False
        self._lock = threading.Lock()
        self._site_key_tail = self._tail()

    def _tail(self) -> str:
        """What follows the id in a site hash key (site_key = site_key_prefix + id + tail)."""
        prefix, key = self.keys.site_key_prefix(), self.keys.site_key(1)
        if not key.startswith(prefix + "1"):
            raise ValueError("KeyManager.site_key must start with site_key_prefix followed by the id")
        return key[len(prefix) + 1 :]

    # -- writes --------------------------------------------------------------------------------
    def insert(self, site: Site, pipeline: Pipeline | None = None) -> None:
        """Insert or replace ``site`` and its index entries.

        With ``pipeline``, the write is queued there (after one read now, for the index keys to
        leave); if the site changes before the pipeline runs, the queued script fails with a
        ``STALE`` error instead of corrupting the indexes.
        """
        if pipeline is None:
            self._write(site, "upsert")
            return
        _check_geo_indexable(site)
        stored = self._read_stored(site.id)
        call = self._upsert_call(site, "upsert", stored, strict=True)
        pipeline.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)

    def insert_many(self, *sites: Site) -> None:
        """Insert or replace many sites (the last one wins for a repeated id).

        New sites cost one round trip per batch of up to ``BATCH_SIZE``; sites that exist already one
        more (their stored values come back with the first attempt).
        """
        for site in sites:
            _check_geo_indexable(site)  # all of them before any write
        latest = {site.id: site for site in sites}
        batch = list(latest.values())
        for start in range(0, len(batch), BATCH_SIZE):
            self._write_batch(batch[start : start + BATCH_SIZE])

    def create(self, site: Site) -> None:
        """Insert ``site``, which must be new; else raise :class:`SiteAlreadyExists`."""
        self._write(site, "create")

    def update(self, site: Site) -> None:
        """Replace an existing site; raise :class:`SiteNotFound` if there is none with its id."""
        self._write(site, "update")

    def delete(self, site_id: int) -> bool:
        """Delete a site, its index entries and its capacity leaderboard entry. Returns whether it existed."""
        site_id = _checked_id(site_id)
        stored: Stored = None
        for _ in range(WRITE_ATTEMPTS):
            reply = self._run(self._delete_call(site_id, stored))
            if reply[0] == "OK":
                return reply[1] == "1"
            stored = _stored_from(reply)
        raise WatchError(f"Site {site_id} kept changing; it was not deleted")

    def _write(self, site: Site, mode: str) -> bool:
        """Run the upsert script until its guard holds. Returns whether the site existed."""
        stored: Stored = None
        for _ in range(WRITE_ATTEMPTS):
            reply = self._run(self._upsert_call(site, mode, stored))
            if reply[0] == "OK":
                return reply[1] == "1"
            if reply[0] == "EXISTS":
                raise SiteAlreadyExists(site.id)
            if reply[0] == "MISSING":
                raise SiteNotFound(site.id)
            stored = _stored_from(reply)
        raise WatchError(f"Site {site.id} kept changing; it was not written")

    def _write_batch(self, sites: list[Site]) -> None:
        pending: list[tuple[Site, Stored]] = [(site, None) for site in sites]
        for _ in range(WRITE_ATTEMPTS):
            if not pending:
                return
            calls = [self._upsert_call(site, "upsert", stored) for site, stored in pending]
            replies = [_decoded(r) for r in run_scripts(self.redis, calls)]
            stale = [(s, r) for (s, _), r in zip(pending, replies, strict=True) if r[0] != "OK"]
            pending = [(s, _stored_from(r)) for s, r in stale]
        if pending:
            raise WatchError(f"Site {pending[0][0].id} kept changing; it was not written")

    def _run(self, call: ScriptCall) -> list[str]:
        return list(_decoded(run_scripts(self.redis, [call])[0]))

    def _read_stored(self, site_id: int) -> Stored:
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.keys.site_key(site_id))
        pipe.hmget(self.keys.site_key(site_id), ["state", "city", "postal_code"])
        pipe.script_exists(script("sites_upsert").sha)
        exists, values, loaded = pipe.execute()
        if not loaded[0]:
            self.redis.script_load(script("sites_upsert").source)
        if not exists:
            return None
        state, city, postal = ("" if v is None else _text(v) for v in values)
        return state, city, postal

    def _index_keys(self, state: str, city: str, postal: str) -> list[str]:
        keys = self.keys
        return [keys.site_state_key(state), keys.site_city_key(city), keys.site_postal_key(postal)]

    def _upsert_call(self, site: Site, mode: str, stored: Stored, *, strict: bool = False) -> ScriptCall:
        _check_geo_indexable(site)
        new_keys = self._index_keys(site.state, site.city, site.postal_code)
        old_keys = self._index_keys(*stored) if stored else new_keys
        coordinate = site.coordinate
        keys = (
            self.keys.site_key(site.id),
            self.keys.site_ids_key(),
            self.keys.site_geo_key(),
            self.keys.capacity_leaderboard_key(),
            *new_keys,
            *old_keys,
            self.keys.board_sum_key(self.keys.capacity_leaderboard_key()),
        )
        args = (
            mode,
            "1" if strict else "0",
            *_belief(stored),
            str(site.id),
            self.keys.member(site.id),
            repr(site.capacity),
            repr(coordinate.lng) if coordinate else "",
            repr(coordinate.lat) if coordinate else "",
            *(item for pair in self._hash_fields(site).items() for item in pair),
        )
        return ScriptCall(script("sites_upsert"), keys, args)

    def _delete_call(self, site_id: int, stored: Stored) -> ScriptCall:
        old_keys = self._index_keys(*stored) if stored else self._index_keys("", "", "")
        keys = (
            self.keys.site_key(site_id),
            self.keys.site_ids_key(),
            self.keys.site_geo_key(),
            self.keys.capacity_leaderboard_key(),
            *old_keys,
            self.keys.board_sum_key(self.keys.capacity_leaderboard_key()),
        )
        args = (*_belief(stored), str(site_id), self.keys.member(site_id))
        return ScriptCall(script("sites_delete"), keys, args)

    def _hash_fields(self, site: Site) -> dict[str, str]:
        fields = {
            "id": str(site.id),
            "capacity": repr(site.capacity),
            "panels": str(site.panels),
            "address": site.address,
            "city": site.city,
            "state": site.state,
            "postal_code": site.postal_code,
            "idx_state": _suffix(self.keys.site_state_key, site.state),
            "idx_city": _suffix(self.keys.site_city_key, site.city),
            "idx_postal": _suffix(self.keys.site_postal_key, site.postal_code),
            "idx_prefixes": TAG_SEPARATOR.join(word_prefixes(site.address, site.city)),
        }
        if site.coordinate is not None:
            lat, lng = repr(site.coordinate.lat), repr(site.coordinate.lng)
            fields.update(lat=lat, lng=lng, location=f"{lng},{lat}")
        return fields

    # -- reads ---------------------------------------------------------------------------------
    def find_by_id(self, site_id: int) -> Site | None:
        """The site with that id, or None."""
        return _site_from_row(self.redis.hmget(self.keys.site_key(_checked_id(site_id)), list(SITE_FIELDS)))

    def find_by_ids(self, ids: Iterable[int]) -> list[Site | None]:
        """The sites with those ids, in the same order, None for a missing one (one round trip)."""
        keys = [self.keys.site_key(_checked_id(site_id)) for site_id in ids]
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, list(SITE_FIELDS))
        return [_site_from_row(row) for row in pipe.execute()]

    def find_all(self) -> list[Site]:
        """Every site, by ascending id, in one round trip (``sites_find_all.lua``: standalone server)."""
        call = ScriptCall(
            script("sites_find_all"),
            (self.keys.site_ids_key(),),
            (self.keys.site_key_prefix(), self._site_key_tail, *SITE_FIELDS),
        )
        rows = run_scripts(self.redis, [call])[0]
        return [site for site in (_site_from_row(row) for row in rows) if site is not None]

    def exists(self, site_id: int) -> bool:
        """Whether a site with that id exists."""
        return bool(self.redis.exists(self.keys.site_key(_checked_id(site_id))))

    def count(self) -> int:
        """The number of sites."""
        return int(self.redis.zcard(self.keys.site_ids_key()))

    def get_total_capacity(self) -> float:
        """The sum of all sites' capacities in kW: the capacity board's running sum (one round trip)."""
        return board_sum(self.redis, self.keys.capacity_leaderboard_key())

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        *,
        q: str | None = None,
        state: str | None = None,
        city: str | None = None,
        postal_code: str | None = None,
        min_capacity: float | None = None,
        max_capacity: float | None = None,
        lat: float | None = None,
        lng: float | None = None,
        radius_km: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> SearchResult:
        """Sites matching every given filter, one page of them (see the module docstring).

        Raises :class:`InvalidQuery` for a bad argument, before touching Redis.
        """
        query = self._query(
            q, state, city, postal_code, min_capacity, max_capacity, lat, lng, radius_km, limit, offset
        )
        if self._prepare_search() == "redisearch":
            return self._search_redisearch(query)
        return self._search_core(query)

    def _query(
        self,
        q: object,
        state: object,
        city: object,
        postal_code: object,
        min_capacity: object,
        max_capacity: object,
        lat: object,
        lng: object,
        radius_km: object,
        limit: object,
        offset: object,
    ) -> _Query:
        keys = self.keys
        exact = []
        for field, name, value, key_of in (
            ("idx_state", "state", state, keys.site_state_key),
            ("idx_city", "city", city, keys.site_city_key),
            ("idx_postal", "postal_code", postal_code, keys.site_postal_key),
        ):
            if value is not None:
                checked = _string(name, value)
                exact.append((field, key_of(checked), _suffix(key_of, checked)))
        low, high = _capacity_range(min_capacity, max_capacity)
        limit_i = _integer("limit", limit, 1, MAX_LIMIT)
        offset_i = _integer("offset", offset, 0, MAX_WINDOW - limit_i)
        return _Query(
            terms=() if q is None else _terms(q),
            exact=tuple(exact),
            min_capacity=low,
            max_capacity=high,
            geo=_geo(lat, lng, radius_km),
            limit=limit_i,
            offset=offset_i,
        )

    @property
    def search_backend(self) -> str:
        """``"redisearch"`` or ``"core"``: the path searches take (probing the server once if "auto")."""
        return self._prepare_search()

    def _prepare_search(self) -> str:
        """Resolve the search path once, and make sure the RediSearch index exists and is built."""
        backend = self._backend
        if backend == "core" or (backend == "redisearch" and self._index_ready):
            return backend
        with self._lock:
            if self._backend is None:
                problem = self.redisearch_problem()
                self._backend = "core" if problem else "redisearch"
                log.info("Site search uses the %s path%s", self._backend, f" ({problem})" if problem else "")
            if self._backend == "redisearch" and not self._index_ready:
                self._ensure_index_or_fall_back()
            return self._backend

    def redisearch_problem(self) -> str | None:
        """Why RediSearch cannot serve this client's searches, or None if it can (one round trip)."""
        if not self._has_redisearch():
            return "the Redis server has no RediSearch module"
        db = self._db()
        if db != 0:
            return f"RediSearch indexes only database 0, and RediSolar uses database {db} (REDIS_DB)"
        return None

    def _db(self) -> int:
        """The database number the client selects (0 for clients without one, e.g. a cluster's)."""
        pool = getattr(self.redis, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        return int(kwargs.get("db") or 0)

    def _ensure_index_or_fall_back(self) -> None:
        """Create the index; in "auto" mode, take the core path if the server refuses to index here
        (e.g. a proxy that hides the database number: "Cannot create index on db != 0")."""
        try:
            self._ensure_index()
        except ResponseError as e:
            if not _cannot_index_here(e):
                raise
            if not self._auto:
                raise BackendUnavailable(
                    f"SEARCH_BACKEND=redisearch cannot work here: {_text(e.args[0])}; use auto or core"
                ) from e
            log.info("Site search uses the core path (RediSearch refused: %s)", _text(e.args[0]))
            self._backend = "core"
            return
        self._index_ready = True

    def _has_redisearch(self) -> bool:
        try:
            self.redis.execute_command("FT._LIST")
        except ResponseError:  # unknown command (or not allowed): no RediSearch for us
            return False
        return True

    # -- search: core path ---------------------------------------------------------------------
    def _search_core(self, query: _Query) -> SearchResult:
        candidates = self._core_candidates(query)
        if query.terms:
            candidates = self._matching_terms(candidates, query.terms)
        page = candidates[query.offset : query.offset + query.limit]
        sites = [site for site in self.find_by_ids(page) if site is not None] if page else []
        return SearchResult(sites, len(candidates))

    def _core_candidates(self, query: _Query) -> list[int]:
        """Ids matching every filter but the terms, in result order (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        sets = [key for _, key, _ in query.exact]
        if sets:
            pipe.sinter(sets)
        ranged = query.min_capacity is not None or query.max_capacity is not None
        if ranged:
            low = "-inf" if query.min_capacity is None else repr(query.min_capacity)
            high = "+inf" if query.max_capacity is None else repr(query.max_capacity)
            pipe.zrangebyscore(self.keys.capacity_leaderboard_key(), low, high)
        if query.geo is not None:
            lat, lng, radius_km = query.geo
            key = self.keys.site_geo_key()
            pipe.geosearch(key, longitude=lng, latitude=lat, radius=radius_km * 1000, unit="m", withdist=True)
        if not sets and not ranged and query.geo is None:
            pipe.zrange(self.keys.site_ids_key(), 0, -1)
        replies = pipe.execute()
        return _combine(replies, sets=bool(sets), ranged=ranged, geo=query.geo is not None)

    def _matching_terms(self, ids: list[int], terms: tuple[str, ...]) -> list[int]:
        """The ids (order kept) whose ``idx_prefixes`` hold every term (one round trip)."""
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for site_id in ids:
            pipe.hget(self.keys.site_key(site_id), "idx_prefixes")
        found = pipe.execute()
        return [
            site_id
            for site_id, text in zip(ids, found, strict=True)
            if text is not None and set(terms) <= set(_text(text).split(TAG_SEPARATOR))
        ]

    # -- search: RediSearch path ---------------------------------------------------------------
    def _search_redisearch(self, query: _Query) -> SearchResult:
        try:
            return self._redisearch_page(query)
        except ResponseError as e:
            if not _is_missing_index(e):
                raise
        log.warning("The site search index disappeared (FLUSHDB?); creating it again")
        with self._lock:
            self._index_ready = False
        self._prepare_search()
        return self._redisearch_page(query)

    def _redisearch_page(self, query: _Query) -> SearchResult:
        text = _redisearch_query(query)
        index = self.keys.site_search_index()
        if query.geo is None:
            reply = self.redis.execute_command(
                "FT.SEARCH", index, text, "RETURN", len(SITE_FIELDS), *SITE_FIELDS,
                "SORTBY", "id_num", "ASC", "LIMIT", query.offset, query.limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = _search_rows(reply, with_keys=True)
        else:
            lat, lng, _ = query.geo
            reply = self.redis.execute_command(
                "FT.AGGREGATE", index, text,
                "LOAD", len(SITE_FIELDS) + 1, *(f"@{f}" for f in SITE_FIELDS), "@location",
                "APPLY", f"geodistance(@location, {lng!r}, {lat!r})", "AS", "__distance",
                "SORTBY", 4, "@__distance", "ASC", "@id_num", "ASC",
                "LIMIT", query.offset, query.limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = _search_rows(reply, with_keys=False)
        sites = [site for site in (_site_from_fields(row) for row in rows) if site is not None]
        return SearchResult(sites, total)

    def _ensure_index(self) -> None:
        """Create the search index unless it exists (as defined here), then wait until it is built."""
        if not self._create_index() and not self._index_is_current():
            index = self.keys.site_search_index()
            log.warning("Recreating the site search index %s (its schema changed)", index)
            try:
                self.redis.execute_command("FT.DROPINDEX", index)  # the hashes stay
            except ResponseError as e:
                if not _is_missing_index(e):  # another process may have dropped it first
                    raise
            self._create_index()
        self._wait_until_indexed()

    def _create_index(self) -> bool:
        """FT.CREATE the index; False if it exists already."""
        try:
            self.redis.execute_command("FT.CREATE", self.keys.site_search_index(), *self._index_definition())
        except ResponseError as e:
            message = _text(e.args[0] if e.args else "").lower()
            if "unknown command" in message:
                raise BackendUnavailable("Site search needs RediSearch, which this Redis server lacks") from e
            if "already exists" in message:
                return False
            raise
        return True

    def _index_definition(self) -> list[str]:
        tag = ["TAG", "SEPARATOR", TAG_SEPARATOR, "CASESENSITIVE"]
        return [
            "ON", "HASH", "PREFIX", "1", self.keys.site_key_prefix(), "STOPWORDS", "0", "SCHEMA",
            "idx_prefixes", *tag,
            "idx_state", *tag, "idx_city", *tag, "idx_postal", *tag,
            "capacity", "AS", "capacity_num", "NUMERIC",
            "id", "AS", "id_num", "NUMERIC", "SORTABLE",
            "location", "GEO",
        ]  # fmt: skip

    def _index_info(self) -> dict[str, Any]:
        reply = _decoded(self.redis.execute_command("FT.INFO", self.keys.site_search_index()))
        return reply if isinstance(reply, dict) else _pairs(reply)

    def _index_is_current(self) -> bool:
        """Whether the existing index has this version's attributes (identifier, name)."""
        attributes = [a if isinstance(a, dict) else _pairs(a) for a in self._index_info()["attributes"]]
        return {(a.get("identifier"), a.get("attribute")) for a in attributes} == INDEX_ATTRIBUTES

    def _wait_until_indexed(self) -> None:
        """Wait for the (asynchronous) indexing of existing hashes to finish."""
        deadline = time.monotonic() + INDEX_BUILD_TIMEOUT
        pause = 0.005
        while True:
            info = self._index_info()
            if int(info.get("indexing", 0)) == 0 and float(info.get("percent_indexed", 1)) >= 1:
                return
            if time.monotonic() > deadline:
                raise BackendUnavailable("The site search index is still being built; try again shortly")
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


# -- helpers of the DAO --------------------------------------------------------------------------
def _check_geo_indexable(site: Site) -> None:
    if site.coordinate is not None and abs(site.coordinate.lat) > GEO_MAX_LAT:
        raise InvalidInput(
            f"Latitude {site.coordinate.lat} is beyond ±{GEO_MAX_LAT}, the range Redis can index",
            {"site_id": site.id},
        )


def _belief(stored: Stored) -> tuple[str, str, str, str]:
    return ("1", *stored) if stored else ("0", "", "", "")


def _stored_from(reply: Sequence[Any]) -> Stored:
    """The stored values a ``STALE`` script reply reports."""
    if reply[0] != "STALE":
        raise ResponseError(f"Unexpected reply from a sites script: {reply[0]!r}")
    if reply[1] != "1":
        return None
    return _text(reply[2]), _text(reply[3]), _text(reply[4])


def _member_id(member: Any) -> int:
    return int(_text(member).rsplit(":", 1)[1])


def _combine(replies: list[Any], *, sets: bool, ranged: bool, geo: bool) -> list[int]:
    """Intersect the replies of :meth:`SiteDaoRedis._core_candidates`, in result order."""
    replies = list(replies)
    keep: set[int] | None = None
    if sets:
        keep = {int(_text(v)) for v in replies.pop(0)}
    if ranged:
        ids = {_member_id(m) for m in replies.pop(0)}
        keep = ids if keep is None else keep & ids
    if geo:
        by_distance = sorted((float(dist), int(_text(member))) for member, dist in replies.pop(0))
        return [site_id for _, site_id in by_distance if keep is None or site_id in keep]
    if keep is None:
        return [int(_text(v)) for v in replies.pop(0)]
    return sorted(keep)


def _redisearch_query(query: _Query) -> str:
    clauses = [f"@idx_prefixes:{{{_escape(term)}}}" for term in query.terms]
    clauses += [f"@{field}:{{{_escape(value)}}}" for field, _, value in query.exact]
    if query.min_capacity is not None or query.max_capacity is not None:
        low = "-inf" if query.min_capacity is None else repr(query.min_capacity)
        high = "+inf" if query.max_capacity is None else repr(query.max_capacity)
        clauses.append(f"@capacity_num:[{low} {high}]")
    if query.geo is not None:
        lat, lng, radius_km = query.geo
        clauses.append(f"@location:[{lng!r} {lat!r} {radius_km!r} km]")
    return " ".join(clauses) or "*"


def _search_rows(reply: Any, *, with_keys: bool) -> tuple[int, list[dict[str, Any]]]:
    """Total and field maps of an FT.SEARCH (``with_keys``) or FT.AGGREGATE reply, RESP2 or RESP3."""
    reply = _decoded(reply)
    if isinstance(reply, dict):
        rows = [dict(result.get("extra_attributes") or {}) for result in reply.get("results", [])]
        return int(reply["total_results"]), rows
    items = reply[2::2] if with_keys else reply[1:]
    return int(reply[0]), [_pairs(item) for item in items]


def _cannot_index_here(error: ResponseError) -> bool:
    return "db != 0" in _text(error.args[0] if error.args else "").lower()


def _is_missing_index(error: ResponseError) -> bool:
    message = _text(error.args[0] if error.args else "").lower()
    return "no such index" in message or "unknown index name" in message


site_from_row = _site_from_row
"""Public name of the row parser, used by the leaderboard pages."""

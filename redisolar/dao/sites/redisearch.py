"""Site search with RediSearch: one ``FT.SEARCH`` (or ``FT.AGGREGATE`` to sort by distance).

The index covers the site hashes (prefix ``site_key_prefix``) and only their search fields: the
``idx_*`` fields as exact TAGs (not RediSearch's TEXT analysis, whose word rules differ from ours
and whose prefix queries stop after 200 expansions), ``capacity`` and ``id`` as NUMERIC (aliased, so
that reading them back does not round them), ``location`` as GEO. Same answers as
:mod:`.core_search`. RediSearch indexes database 0 only.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import redis
from redis.exceptions import ResponseError

from redisolar import store
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites.hashes import SITE_FIELDS, TAG_SEPARATOR, decoded, pairs, site_from_fields, text
from redisolar.dao.sites.query import SearchQuery, SearchResult
from redisolar.errors import BackendUnavailable

log = logging.getLogger(__name__)

INDEX_BUILD_TIMEOUT = 60.0
"""Seconds to wait for the index to cover the existing hashes."""

INDEX_ATTRIBUTES = {
    ("idx_prefixes", "idx_prefixes"),
    ("idx_state", "idx_state"),
    ("idx_city", "idx_city"),
    ("idx_postal", "idx_postal"),
    ("capacity", "capacity_num"),  # aliased: RETURN/LOAD of an indexed name would round the number
    ("id", "id_num"),
    ("location", "location"),
}
"""(hash field, attribute) pairs of the index as this version defines it."""


class RediSearchSites:
    """The site search index: whether it can work here, creating it, and querying it."""

    def __init__(self, client: redis.Redis, keys: KeyManager) -> None:
        self.redis = client
        self.keys = keys

    # -- can it work here? -------------------------------------------------------------------------
    def problem(self) -> str | None:
        """Why RediSearch cannot serve this client's searches, or None if it can (one round trip)."""
        if store.is_cluster(self.redis):  # the module's OSS build indexes one shard's keys only
            return "on a Redis Cluster RediSearch indexes one shard only, so search uses the core structures"
        if not self._has_redisearch():
            return "the Redis server has no RediSearch module"
        db = self._db()
        if db != 0:
            return f"RediSearch indexes only database 0, and RediSolar uses database {db} (REDIS_DB)"
        return None

    def _has_redisearch(self) -> bool:
        try:
            self.redis.execute_command("FT._LIST")
        except ResponseError:  # unknown command (or not allowed): no RediSearch for us
            return False
        return True

    def _db(self) -> int:
        """The database number the client selects (0 for clients without one, e.g. a cluster's)."""
        pool = getattr(self.redis, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        return int(kwargs.get("db") or 0)

    # -- searching ---------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        """One page of the sites matching ``query`` and the number of all matches.

        Raises ``ResponseError`` (see :func:`is_missing_index`) if the index is gone.
        """
        filters = _query_text(query)
        index = self.keys.site_search_index()
        if query.geo is None:
            reply = self.redis.execute_command(
                "FT.SEARCH", index, filters, "RETURN", len(SITE_FIELDS), *SITE_FIELDS,
                "SORTBY", "id_num", "ASC", "LIMIT", query.offset, query.limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = _search_rows(reply, with_keys=True)
        else:
            lat, lng, _ = query.geo
            reply = self.redis.execute_command(
                "FT.AGGREGATE", index, filters,
                "LOAD", len(SITE_FIELDS) + 1, *(f"@{f}" for f in SITE_FIELDS), "@location",
                "APPLY", f"geodistance(@location, {lng!r}, {lat!r})", "AS", "__distance",
                "SORTBY", 4, "@__distance", "ASC", "@id_num", "ASC",
                "LIMIT", query.offset, query.limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = _search_rows(reply, with_keys=False)
        sites = [site for site in (site_from_fields(row) for row in rows) if site is not None]
        return SearchResult(sites, total)

    # -- the index ---------------------------------------------------------------------------------
    def ensure_index(self) -> None:
        """Create the search index unless it exists (as defined here), then wait until it is built.

        Raises ``ResponseError`` when the server refuses (see :func:`cannot_index_here`).
        """
        if not self._create_index() and not self._index_is_current():
            index = self.keys.site_search_index()
            log.warning("Recreating the site search index %s (its schema changed)", index)
            try:
                self.redis.execute_command("FT.DROPINDEX", index)  # the hashes stay
            except ResponseError as e:
                if not is_missing_index(e):  # another process may have dropped it first
                    raise
            self._create_index()
        self._wait_until_indexed()

    def _create_index(self) -> bool:
        """FT.CREATE the index; False if it exists already."""
        try:
            self.redis.execute_command("FT.CREATE", self.keys.site_search_index(), *self._index_definition())
        except ResponseError as e:
            message = text(e.args[0] if e.args else "").lower()
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
        reply = decoded(self.redis.execute_command("FT.INFO", self.keys.site_search_index()))
        return reply if isinstance(reply, dict) else pairs(reply)

    def _index_is_current(self) -> bool:
        """Whether the existing index has this version's attributes (identifier, name)."""
        attributes = [a if isinstance(a, dict) else pairs(a) for a in self._index_info()["attributes"]]
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


def cannot_index_here(error: ResponseError) -> bool:
    """Whether ``error`` is the server refusing to index this database ("db != 0")."""
    return "db != 0" in text(error.args[0] if error.args else "").lower()


def is_missing_index(error: ResponseError) -> bool:
    """Whether ``error`` says the index does not exist (e.g. after FLUSHDB)."""
    message = text(error.args[0] if error.args else "").lower()
    return "no such index" in message or "unknown index name" in message


def _escape(value: str) -> str:
    """``value`` with every ASCII character other than a letter or digit escaped for RediSearch."""
    return re.sub(r"([\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f])", r"\\\1", value)


def _query_text(query: SearchQuery) -> str:
    """The RediSearch query (DIALECT 2) for ``query``'s filters."""
    clauses = [f"@idx_prefixes:{{{_escape(term)}}}" for term in query.terms]
    clauses += [f"@{field}:{{{_escape(value)}}}" for field, _, value in query.exact]
    bounds = query.capacity_bounds
    if bounds is not None:
        low, high = bounds
        clauses.append(f"@capacity_num:[{low} {high}]")
    if query.geo is not None:
        lat, lng, radius_km = query.geo
        clauses.append(f"@location:[{lng!r} {lat!r} {radius_km!r} km]")
    return " ".join(clauses) or "*"


def _search_rows(reply: Any, *, with_keys: bool) -> tuple[int, list[dict[str, Any]]]:
    """Total and field maps of an FT.SEARCH (``with_keys``) or FT.AGGREGATE reply, RESP2 or RESP3."""
    reply = decoded(reply)
    if isinstance(reply, dict):
        rows = [dict(result.get("extra_attributes") or {}) for result in reply.get("results", [])]
        return int(reply["total_results"]), rows
    items = reply[2::2] if with_keys else reply[1:]
    return int(reply[0]), [pairs(item) for item in items]

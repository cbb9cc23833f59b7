"""The sites DAO: the store, plus search on whichever of the two paths can serve this client."""

from __future__ import annotations

import logging
import threading
from typing import Literal

import redis
from redis.exceptions import ResponseError

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites.core_search import CoreSearch
from redisolar.dao.sites.hashes import text
from redisolar.dao.sites.pages import unfiltered_search
from redisolar.dao.sites.query import SearchQuery, SearchResult, parse_query
from redisolar.dao.sites.reconcile import ReconcileReport, reconcile_sites
from redisolar.dao.sites.redisearch import RediSearchSites, cannot_index_here, is_missing_index
from redisolar.dao.sites.store import SiteStore
from redisolar.errors import BackendUnavailable

log = logging.getLogger(__name__)

SearchMode = Literal["auto", "redisearch", "core"]


class SiteDaoRedis(SiteStore):
    """Sites: CRUD, totals (from :class:`SiteStore`) and search.

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
        super().__init__(client, keys=keys)
        self._backend: str | None = None if search == "auto" else search
        self._auto = search == "auto"
        self._index_ready = False
        self._lock = threading.Lock()
        self._core = CoreSearch(self.redis, self.keys, self.find_by_ids)
        self._redisearch = RediSearchSites(self.redis, self.keys)

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
        """Sites matching every given filter, one page of them (see :mod:`redisolar.dao.sites`).

        Raises :class:`InvalidQuery` for a bad argument, before touching Redis.
        """
        query = parse_query(
            self.keys,
            q=q,
            state=state,
            city=city,
            postal_code=postal_code,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            lat=lat,
            lng=lng,
            radius_km=radius_km,
            limit=limit,
            offset=offset,
        )
        if not (query.terms or query.exact or query.capacity_bounds or query.geo):
            # No filter: one page of the id index by rank, whatever the fleet's size (both engines
            # would read or sort every site to answer it).
            return unfiltered_search(self.redis, self.keys, limit=query.limit, offset=query.offset)
        if self._prepare_search() == "redisearch":
            return self._search_redisearch(query)
        return self._core.search(query)

    def reconcile(self) -> ReconcileReport:
        """Repair the fleet-wide index from the site hashes (see :mod:`redisolar.dao.sites.reconcile`)."""
        return reconcile_sites(self)

    @property
    def search_backend(self) -> str:
        """``"redisearch"`` or ``"core"``: the path searches take (probing the server once if "auto")."""
        return self._prepare_search()

    def redisearch_problem(self) -> str | None:
        """Why RediSearch cannot serve this client's searches, or None if it can (one round trip)."""
        return self._redisearch.problem()

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

    def _ensure_index_or_fall_back(self) -> None:
        """Create the index; in "auto" mode, take the core path if the server refuses to index here
        (e.g. a proxy that hides the database number: "Cannot create index on db != 0")."""
        try:
            self._redisearch.ensure_index()
        except ResponseError as e:
            if not cannot_index_here(e):
                raise
            if not self._auto:
                raise BackendUnavailable(
                    f"SEARCH_BACKEND=redisearch cannot work here: {text(e.args[0])}; use auto or core"
                ) from e
            log.info("Site search uses the core path (RediSearch refused: %s)", text(e.args[0]))
            self._backend = "core"
            return
        self._index_ready = True

    def _search_redisearch(self, query: SearchQuery) -> SearchResult:
        """Search with RediSearch, creating the index again if it disappeared (FLUSHDB?)."""
        try:
            return self._redisearch.search(query)
        except ResponseError as e:
            if not is_missing_index(e):
                raise
        log.warning("The site search index disappeared (FLUSHDB?); creating it again")
        with self._lock:
            self._index_ready = False
        self._prepare_search()
        return self._redisearch.search(query)

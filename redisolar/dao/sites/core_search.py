"""Site search on core Redis structures: no module needed, at most three round trips.

``SINTER`` of the state/city/postal index sets, ``ZRANGEBYSCORE`` on the capacity leaderboard and
``GEOSEARCH`` on ``sites:geo`` in one pipeline; then the text terms checked against the candidates'
``idx_prefixes`` hash fields; then the page's hashes. Same answers as :mod:`.redisearch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites.hashes import TAG_SEPARATOR, text
from redisolar.dao.sites.query import SearchQuery, SearchResult
from redisolar.models.site import Site
from redisolar.store import node_client_for_slot, slot_of

FindByIds = Callable[[Iterable[int]], list[Site | None]]
"""Reads sites by id, in order, None for a missing one (:meth:`SiteStore.find_by_ids`)."""


class CoreSearch:
    """Searches the sites with sets, a sorted set and a geo set (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: KeyManager, find_by_ids: FindByIds) -> None:
        self.redis = client
        self.keys = keys
        self._find_by_ids = find_by_ids

    def search(self, query: SearchQuery) -> SearchResult:
        """One page of the sites matching ``query`` and the number of all matches."""
        candidates = self._candidates(query)
        if query.terms:
            candidates = self._matching_terms(candidates, query.terms)
        page = candidates[query.offset : query.offset + query.limit]
        sites = [site for site in self._find_by_ids(page) if site is not None] if page else []
        return SearchResult(sites, len(candidates))

    def _candidates(self, query: SearchQuery) -> list[int]:
        """Ids matching every filter but the terms, in result order (one round trip). Every index key
        is in the ``{sites}`` slot, so one plain pipeline to its node serves them (redis-py's cluster
        pipeline refuses SINTER)."""
        node = node_client_for_slot(self.redis, slot_of(self.keys.site_ids_key()))
        pipe = node.pipeline(transaction=False)
        sets = [key for _, key, _ in query.exact]
        if sets:
            pipe.sinter(sets)
        bounds = query.capacity_bounds
        if bounds is not None:
            pipe.zrangebyscore(self.keys.capacity_leaderboard_key(), *bounds)
        if query.geo is not None:
            lat, lng, radius_km = query.geo
            key = self.keys.site_geo_key()
            pipe.geosearch(key, longitude=lng, latitude=lat, radius=radius_km * 1000, unit="m", withdist=True)
        if not sets and bounds is None and query.geo is None:
            pipe.zrange(self.keys.site_ids_key(), 0, -1)
        replies = pipe.execute()
        return _combine(replies, sets=bool(sets), ranged=bounds is not None, geo=query.geo is not None)

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
            for site_id, prefixes in zip(ids, found, strict=True)
            if prefixes is not None and set(terms) <= set(text(prefixes).split(TAG_SEPARATOR))
        ]


def _member_id(member: Any) -> int:
    return int(text(member).rsplit(":", 1)[1])


def _combine(replies: list[Any], *, sets: bool, ranged: bool, geo: bool) -> list[int]:
    """Intersect the replies of :meth:`CoreSearch._candidates`, in result order."""
    replies = list(replies)
    keep: set[int] | None = None
    if sets:
        keep = {int(text(v)) for v in replies.pop(0)}
    if ranged:
        ids = {_member_id(m) for m in replies.pop(0)}
        keep = ids if keep is None else keep & ids
    if geo:
        by_distance = sorted((float(dist), int(text(member))) for member, dist in replies.pop(0))
        return [site_id for _, site_id in by_distance if keep is None or site_id in keep]
    if keep is None:
        return [int(text(v)) for v in replies.pop(0)]
    return sorted(keep)

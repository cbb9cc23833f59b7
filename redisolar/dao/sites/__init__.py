"""Sites in Redis: one hash per site, the indexes that find them, and search.

Modules:

- :mod:`.hashes`: the site hash's fields, reading a :class:`Site` back, the search fields' words;
- :mod:`.store`: :class:`SiteStore`, writes (one Lua script per site) and reads;
- :mod:`.query`: the search arguments, validated in one place (:func:`parse_query`), and the result;
- :mod:`.core_search`: search on sets, a sorted set and a geo set;
- :mod:`.redisearch`: search with a RediSearch index;
- :mod:`.dao`: :class:`SiteDaoRedis`, the store plus search on the path that can serve the client.

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

Every write keeps all of them in step with the hash, atomically (see :mod:`.store`). The index keys are
shared by all sites, so the sites DAO needs a standalone server (not a Redis Cluster).

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

from redisolar.dao.sites.dao import SearchMode, SiteDaoRedis
from redisolar.dao.sites.hashes import SITE_FIELDS, site_from_row
from redisolar.dao.sites.query import (
    GEO_MAX_LAT,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_RADIUS_KM,
    MAX_WINDOW,
    SearchQuery,
    SearchResult,
    parse_query,
)
from redisolar.dao.sites.store import SiteStore

__all__ = [
    "GEO_MAX_LAT",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_RADIUS_KM",
    "MAX_WINDOW",
    "SITE_FIELDS",
    "SearchMode",
    "SearchQuery",
    "SearchResult",
    "SiteDaoRedis",
    "SiteStore",
    "parse_query",
    "site_from_row",
]
